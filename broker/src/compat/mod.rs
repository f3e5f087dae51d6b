//! Other services' wire protocols, as layers over the v1 handlers and the same
//! replicated commands: there is one queue implementation.
//!
//! - [`sqs`]: Amazon SQS, both the AWS JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.*`,
//!   what current SDKs send) and the query protocol (`Action=...` forms answered in
//!   XML, what older SDKs send), on the client port.

pub mod auth;
pub mod sqs;
