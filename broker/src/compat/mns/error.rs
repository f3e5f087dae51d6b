//! MNS errors: the code and HTTP status MNS answers with, written as its `<Error>`
//! document, so the SDK raises `MNSServerException` with the code it knows.

use sluice_client::{ApiError, ErrorCode};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct MnsError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl MnsError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidArgument", 400, message)
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new("MalformedXML", 400, message)
    }

    pub fn queue_not_exist(queue: &str) -> Self {
        Self::new(
            "QueueNotExist",
            404,
            format!("The queue name you provided is not exist: {queue}"),
        )
    }

    pub fn topic_not_exist(topic: &str) -> Self {
        Self::new(
            "TopicNotExist",
            404,
            format!("The topic name you provided is not exist: {topic}"),
        )
    }

    pub fn subscription_not_exist(topic: &str, sub: &str) -> Self {
        Self::new(
            "SubscriptionNotExist",
            404,
            format!("Topic {topic} has no subscription {sub}"),
        )
    }

    pub fn message_not_exist() -> Self {
        Self::new(
            "MessageNotExist",
            404,
            "Message not exist: the queue has no message to give now",
        )
    }

    pub fn receipt_handle(message: impl Into<String>) -> Self {
        Self::new("ReceiptHandleError", 400, message)
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new("AccessDenied", 403, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new("InvalidArgument", 400, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalError", 500, message)
    }

    /// A v1 refusal in MNS's terms.
    pub fn from_api(e: ApiError) -> Self {
        let message = e.message;
        match e.code {
            ErrorCode::QueueNotFound => Self::new("QueueNotExist", 404, message),
            ErrorCode::TopicNotFound => Self::new("TopicNotExist", 404, message),
            ErrorCode::SubscriptionNotFound => Self::new("SubscriptionNotExist", 404, message),
            ErrorCode::MessageNotFound | ErrorCode::MessageNotInFlight => {
                Self::new("MessageNotExist", 404, message)
            }
            ErrorCode::InvalidReceipt | ErrorCode::ReceiptStale => Self::receipt_handle(message),
            ErrorCode::MessageTooLarge => Self::new("InvalidArgument", 400, message),
            ErrorCode::TooManyRequests => Self::new("Throttling", 429, message),
            ErrorCode::Unavailable | ErrorCode::InsufficientStorage => {
                Self::new("ServiceUnavailable", 503, message)
            }
            ErrorCode::Internal | ErrorCode::Unknown => Self::internal(message),
            _ => Self::invalid(message),
        }
    }
}

impl From<ApiError> for MnsError {
    fn from(e: ApiError) -> Self {
        Self::from_api(e)
    }
}

impl From<crate::http::error::HttpError> for MnsError {
    fn from(e: crate::http::error::HttpError) -> Self {
        Self::from_api(e.0)
    }
}

impl From<crate::xml::XmlError> for MnsError {
    fn from(e: crate::xml::XmlError) -> Self {
        Self::malformed(e.to_string())
    }
}
