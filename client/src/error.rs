//! The JSON error body of the v1 API, its codes, and the client's error type.

use serde::{Deserialize, Serialize};

/// Every error code the broker answers with. The HTTP status that goes with each is
/// fixed by [`ErrorCode::status`], so clients may match on either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request body is not valid JSON or has the wrong shape.
    InvalidRequest,
    /// A queue, topic or subscription name breaks the naming rule.
    InvalidName,
    /// An attribute is out of range or inconsistent with another.
    InvalidAttribute,
    /// A message field is invalid (body encoding, delay, priority, group, ...).
    InvalidMessage,
    /// A batch has no entries or more than the limit.
    InvalidBatch,
    /// A receipt is malformed or belongs to another queue.
    InvalidReceipt,
    /// The receipt was replaced: the message was received again or its visibility changed.
    ReceiptStale,
    /// The message is not in flight, so its visibility cannot change.
    MessageNotInFlight,
    /// No queue by that name.
    QueueNotFound,
    /// No topic by that name.
    TopicNotFound,
    /// No subscription by that name on the topic.
    SubscriptionNotFound,
    /// A cursor is malformed or belongs to another topic.
    InvalidCursor,
    /// No such message in the queue (acknowledged, expired or never sent).
    MessageNotFound,
    /// No redrive task by that id or none running.
    TaskNotFound,
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The queue exists with a different value of an immutable attribute.
    ImmutableAttribute,
    /// A redrive was asked of a queue no other queue uses as its dead-letter queue, or one
    /// is already running.
    RedriveConflict,
    /// A membership change cannot be made now: another is in progress, or it would leave
    /// the cluster without voters.
    ClusterConflict,
    /// No node by that id in the cluster.
    MemberNotFound,
    /// A message body (with its attributes) is over the queue's `maxMessageBytes`.
    MessageTooLarge,
    /// Too many messages in flight, or the broker is shedding load.
    TooManyRequests,
    /// The broker's disk is full: writes are refused, reads and acks still work.
    InsufficientStorage,
    /// No leader yet, or the broker is shutting down; retry after `Retry-After`.
    Unavailable,
    /// A fault inside the broker; never caused by the request.
    Internal,
    /// A code this client version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the broker answers with for this code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidName | InvalidAttribute | InvalidMessage | InvalidBatch
            | InvalidReceipt | ReceiptStale | MessageNotInFlight | InvalidCursor => 400,
            QueueNotFound | TopicNotFound | SubscriptionNotFound | MessageNotFound
            | TaskNotFound | MemberNotFound | NotFound => 404,
            MethodNotAllowed => 405,
            ImmutableAttribute | RedriveConflict | ClusterConflict => 409,
            MessageTooLarge => 413,
            TooManyRequests => 429,
            InsufficientStorage => 507,
            Unavailable => 503,
            Internal | Unknown => 500,
        }
    }

    /// True when the same request may succeed if retried later unchanged.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::Unavailable | ErrorCode::TooManyRequests | ErrorCode::InsufficientStorage
        )
    }
}

/// `{"code": ..., "message": ...}`: what went wrong, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker answered with an error body.
    #[error("{status} {error}")]
    Api { status: u16, error: ApiError },
    /// The request did not reach the broker or the answer did not come back.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The broker answered something this client cannot read.
    #[error("unexpected answer (status {status}): {detail}")]
    Decode { status: u16, detail: String },
    /// The base URL or an argument cannot form a request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A wait for a condition ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    /// The API error code, when the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }
}
