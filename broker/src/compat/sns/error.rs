//! SNS errors: the code the query protocol carries (`NotFound`, `InvalidParameter`), as
//! SNS sends them, so each SDK raises the exception it maps them to.

use sluice_client::{ApiError, ErrorCode};

use crate::compat::sqs::error::SqsError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SnsError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl SnsError {
    fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    /// Whether the caller is at fault (`Sender`) or the service (`Receiver`).
    pub fn fault(&self) -> &'static str {
        if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new("InvalidParameter", 400, message)
    }

    pub fn invalid_parameter_value(message: impl Into<String>) -> Self {
        Self::new("ParameterValueInvalid", 400, message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::invalid_parameter(format!(
            "Invalid parameter: the request must contain the parameter {name}"
        ))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("NotFound", 404, message)
    }

    pub fn invalid_action(action: &str) -> Self {
        Self::new(
            "InvalidAction",
            400,
            format!("The action {action} is not valid for this endpoint"),
        )
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::invalid_parameter(message)
    }

    pub fn authorization(message: impl Into<String>) -> Self {
        Self::new("AuthorizationError", 403, message)
    }

    pub fn auth(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, 403, message)
    }

    pub fn batch(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, 400, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalError", 500, message)
    }

    /// A v1 refusal in SNS's terms.
    pub fn from_api(e: ApiError) -> Self {
        match e.code {
            ErrorCode::TopicNotFound | ErrorCode::SubscriptionNotFound | ErrorCode::NotFound => {
                Self::not_found(e.message)
            }
            ErrorCode::QueueNotFound => {
                Self::invalid_parameter(format!("Invalid parameter: Endpoint: {}", e.message))
            }
            ErrorCode::TooManyRequests => Self::new("Throttled", 429, e.message),
            ErrorCode::Unavailable | ErrorCode::InsufficientStorage => {
                Self::new("ServiceUnavailable", 503, e.message)
            }
            ErrorCode::Internal | ErrorCode::Unknown => Self::internal(e.message),
            _ => Self::invalid_parameter(format!("Invalid parameter: {}", e.message)),
        }
    }
}

impl From<ApiError> for SnsError {
    fn from(e: ApiError) -> Self {
        Self::from_api(e)
    }
}

impl From<crate::http::error::HttpError> for SnsError {
    fn from(e: crate::http::error::HttpError) -> Self {
        Self::from_api(e.0)
    }
}

/// Message attribute checks are shared with SQS; their refusals are SNS's
/// `ParameterValueInvalid` here.
impl From<SqsError> for SnsError {
    fn from(e: SqsError) -> Self {
        Self::invalid_parameter_value(e.message)
    }
}
