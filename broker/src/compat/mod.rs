//! Other services' wire protocols, as layers over the v1 handlers and the same
//! replicated commands: there is one queue implementation.
//!
//! - [`sqs`]: Amazon SQS, both the AWS JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.*`,
//!   what current SDKs send) and the query protocol (`Action=...` forms answered in
//!   XML, what older SDKs send), on the client port.
//! - [`sns`]: Amazon SNS in the query protocol, on the same path as SQS (`/`), told
//!   apart by its action names.
//! - [`attributes`]: the typed message attributes both carry; [`auth`]: access keys and
//!   Signature Version 4 for both.

pub mod attributes;
pub mod auth;
pub mod sns;
pub mod sqs;
