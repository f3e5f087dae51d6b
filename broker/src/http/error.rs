//! The one place that turns errors into HTTP answers: a status from the error code, the
//! JSON error body, and `Retry-After` on transient errors. Internals never leak into a
//! 5xx body; they go to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sluice_client::{ApiError, ErrorBody, ErrorCode};

/// An error answer of the API.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

pub type HttpResult<T> = Result<T, HttpError>;

impl HttpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ApiError::new(code, message))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// A fault of the broker: logged in full, answered in general terms.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self::new(
            ErrorCode::Internal,
            format!("internal error while {context}; see the broker's log"),
        )
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let transient = self.0.code.is_transient();
        let mut response =
            (status, super::extract::Json(ErrorBody { error: self.0 })).into_response();
        if transient {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
