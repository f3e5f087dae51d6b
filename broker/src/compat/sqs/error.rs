//! SQS errors: the shape name the JSON protocol carries in `__type`, the code the query
//! protocol (and the JSON protocol's `x-amzn-query-error` header) carries, as SQS sends
//! them, so each SDK raises the exception it maps them to.

use sluice_client::{ApiError, ErrorCode};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{query_code}: {message}")]
pub struct SqsError {
    /// The modelled exception (`QueueDoesNotExist`), for the JSON protocol's `__type`.
    pub shape: &'static str,
    /// The query protocol's code (`AWS.SimpleQueueService.NonExistentQueue`).
    pub query_code: &'static str,
    pub message: String,
    pub status: u16,
}

impl SqsError {
    fn new(shape: &'static str, query_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            shape,
            query_code,
            message: message.into(),
            status: 400,
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

    pub fn queue_does_not_exist(message: impl Into<String>) -> Self {
        Self::new(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            message,
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterValue", "InvalidParameterValue", message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            "MissingParameter",
            format!("the request must contain the parameter {name}"),
        )
    }

    pub fn invalid_attribute_name(message: impl Into<String>) -> Self {
        Self::new("InvalidAttributeName", "InvalidAttributeName", message)
    }

    pub fn invalid_attribute_value(message: impl Into<String>) -> Self {
        Self::new("InvalidAttributeValue", "InvalidAttributeValue", message)
    }

    pub fn queue_name_exists(message: impl Into<String>) -> Self {
        Self::new("QueueNameExists", "QueueAlreadyExists", message)
    }

    pub fn receipt_handle_is_invalid(message: impl Into<String>) -> Self {
        Self::new("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", message)
    }

    pub fn invalid_message_contents(message: impl Into<String>) -> Self {
        Self::new("InvalidMessageContents", "InvalidMessageContents", message)
    }

    pub fn empty_batch() -> Self {
        Self::new(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "the batch request does not contain any entries",
        )
    }

    pub fn too_many_entries(n: usize) -> Self {
        Self::new(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!("the batch has {n} entries; the limit is 10"),
        )
    }

    pub fn ids_not_distinct(id: &str) -> Self {
        Self::new(
            "BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            format!("the id {id} is used by more than one entry"),
        )
    }

    pub fn invalid_batch_entry_id(id: &str) -> Self {
        Self::new(
            "InvalidBatchEntryId",
            "AWS.SimpleQueueService.InvalidBatchEntryId",
            format!("the entry id {id:?} must be 1 to 80 letters, digits, hyphens and underscores"),
        )
    }

    pub fn batch_too_long(bytes: usize) -> Self {
        Self::new(
            "BatchRequestTooLong",
            "AWS.SimpleQueueService.BatchRequestTooLong",
            format!("the batch's messages total {bytes} bytes; the limit is 262144"),
        )
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            message,
        )
    }

    pub fn invalid_action(action: &str) -> Self {
        Self::new(
            "InvalidAction",
            "InvalidAction",
            format!("the action {action} is not valid for this endpoint"),
        )
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new("MalformedInput", "MalformedQueryString", message)
    }

    /// A request whose signature or key was refused.
    pub fn auth(e: crate::compat::auth::AuthError) -> Self {
        Self {
            status: 403,
            ..Self::new(e.code, e.code, e.message)
        }
    }

    pub fn access_denied(queue: &str) -> Self {
        Self {
            status: 403,
            ..Self::new(
                "AccessDenied",
                "AccessDenied",
                format!("the access key that signed this request may not use the queue {queue}"),
            )
        }
    }

    /// The SQS form of a v1 error.
    pub fn from_api(e: ApiError) -> Self {
        let message = e.message;
        match e.code {
            ErrorCode::QueueNotFound => {
                Self::queue_does_not_exist("The specified queue does not exist.")
            }
            ErrorCode::InvalidAttribute => Self::invalid_attribute_value(message),
            ErrorCode::ImmutableAttribute => Self::queue_name_exists(message),
            ErrorCode::InvalidReceipt | ErrorCode::ReceiptStale | ErrorCode::MessageNotFound => {
                Self::receipt_handle_is_invalid(message)
            }
            ErrorCode::MessageNotInFlight => Self::new(
                "MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
                message,
            ),
            ErrorCode::TooManyRequests => Self::new("OverLimit", "OverLimit", message),
            ErrorCode::TaskNotFound => Self::new(
                "ResourceNotFoundException",
                "ResourceNotFoundException",
                message,
            ),
            ErrorCode::Unavailable | ErrorCode::InsufficientStorage => Self {
                status: 503,
                ..Self::new("ServiceUnavailable", "ServiceUnavailable", message)
            },
            ErrorCode::Internal | ErrorCode::Unknown => Self {
                status: 500,
                ..Self::new("InternalError", "InternalError", message)
            },
            _ => Self::invalid_parameter(message),
        }
    }
}

impl From<crate::http::error::HttpError> for SqsError {
    fn from(e: crate::http::error::HttpError) -> Self {
        Self::from_api(e.0)
    }
}

impl From<ApiError> for SqsError {
    fn from(e: ApiError) -> Self {
        Self::from_api(e)
    }
}
