//! Extractors whose rejections answer with the API's error body, so malformed input gets
//! the same shape of error as everything else, with the field that is wrong named; and
//! the JSON response type.
//!
//! JSON is read and written with sonic-rs, whose SIMD string scanning matters when bodies
//! of messages make up most of every request; serde_json (with the path tracked) runs only
//! to explain a body that sonic-rs refused.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use sluice_client::ErrorCode;

use super::error::HttpError;

/// A JSON body. Any content type is taken (so `curl -d` works), and an empty body reads
/// as `{}`. As a response, the value encoded as JSON.
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        match sonic_rs::to_vec(&self.0) {
            Ok(bytes) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response(),
            Err(e) => HttpError::internal("encoding a response", e).into_response(),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        if let Ok(value) = sonic_rs::from_slice(bytes) {
            return Ok(Json(value));
        }
        // Parse again, tracking the path, only to say where the body is wrong.
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map(Json).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                HttpError::invalid(format!("invalid JSON body: {inner}"))
            } else {
                HttpError::invalid(format!("invalid JSON body at {path}: {inner}"))
            }
        })
    }
}

fn body_rejection(e: BytesRejection) -> HttpError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        HttpError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "the request body is over {} MiB; send fewer or smaller messages per request",
                super::BODY_LIMIT >> 20
            ),
        )
    } else {
        HttpError::invalid(format!(
            "could not read the request body: {}",
            e.body_text()
        ))
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| HttpError::invalid(e.body_text()))
    }
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| HttpError::invalid(e.body_text()))
    }
}
