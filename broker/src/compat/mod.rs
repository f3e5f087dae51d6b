//! Other services' wire protocols, as layers over the v1 handlers and the same
//! replicated commands: there is one queue implementation.
//!
//! - [`sqs`]: Amazon SQS, both the AWS JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.*`,
//!   what current SDKs send) and the query protocol (`Action=...` forms answered in
//!   XML, what older SDKs send), on the client port.
//! - [`sns`]: Amazon SNS in the query protocol, on the same path as SQS (`/`), told
//!   apart by its action names.
//! - [`mns`]: Alibaba Cloud Message Service's XML API (`/queues/...`, `/topics/...`).
//! - [`attributes`]: the typed message attributes both carry; [`auth`]: access keys and
//!   Signature Version 4 for both.

pub mod attributes;
pub mod auth;
pub mod mns;
pub mod sns;
pub mod sqs;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::node::Node;
use crate::topic::config::{Format, Target};
use auth::{SignedRequest, VERIFIED_KEY};
use sqs::error::SqsError;

/// The subscription through which `topic` feeds `queue`, if one does: its name and
/// format. A queue subscription's `SNS` format is how SQS consumers read its messages
/// (SNS notifications), its `XML` format how MNS consumers do (MNS `<Notification>`
/// documents); every other read gives the body as published.
pub fn feeding_subscription(node: &Node, topic: &str, queue: &str) -> Option<(String, Format)> {
    let state = node.group_of(topic).state.read();
    let t = state.topics.get(topic).ok()?;
    t.subscriptions
        .values()
        .find(|s| matches!(&s.config.target, Target::Queue(q) if q == queue))
        .map(|s| (s.name.clone(), s.config.format))
}

/// Paths SQS and SNS requests use: `/` and queue URLs (`/{account}/{queue}`).
fn is_aws_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments.is_empty() || (segments.len() == 2 && segments[0] != "v1")
}

/// Middleware, before any forwarding: when the broker has access keys, an SQS, SNS or
/// MNS request must carry a valid signature by one of them (SigV4, or MNS's), checked
/// here where the signed host and path are the ones the client used; the key travels on
/// with the request. A request another node forwarded (it came in on the peer port) was
/// checked there; on the client port a claimed key is never trusted, whatever headers
/// come with it.
pub async fn authenticate(
    State(node): State<Arc<Node>>,
    mut request: Request,
    next: Next,
) -> Response {
    let forwarded = request.extensions().get::<crate::peer::ViaPeer>().is_some();
    if !forwarded {
        request.headers_mut().remove(VERIFIED_KEY);
    }
    let Some(keys) = node.access_keys.clone() else {
        return next.run(request).await;
    };
    if forwarded {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if mns::is_mns_path(path) {
        let resource = request
            .uri()
            .path_and_query()
            .map_or(path, |p| p.as_str())
            .to_string();
        let verified = auth::verify_mns(
            &keys,
            request.method().as_str(),
            request.headers(),
            &resource,
            chrono::Utc::now(),
        );
        return match verified {
            Ok(key) => {
                if let Ok(id) = HeaderValue::from_str(&key.access_key_id) {
                    request.headers_mut().insert(VERIFIED_KEY, id);
                }
                next.run(request).await
            }
            Err(e) => {
                tracing::debug!(code = e.code, "MNS request refused");
                mns::refuse(e, request.headers(), &node)
            }
        };
    }
    if !is_aws_path(path) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let request_id = sqs::request_id(&node);
    let body = match axum::body::to_bytes(body, crate::http::BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            let e = SqsError::malformed(format!("could not read the request body: {e}"));
            return sqs::refuse(&parts.headers, e, &request_id);
        }
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        host,
    };
    let key_id = match auth::verify(&keys, &signed, chrono::Utc::now()) {
        Ok(key) => HeaderValue::from_str(&key.access_key_id).ok(),
        Err(e) => {
            tracing::debug!(code = e.code, "AWS request refused");
            return sqs::refuse(&parts.headers, SqsError::auth(e), &request_id);
        }
    };
    if let Some(id) = key_id {
        parts.headers.insert(VERIFIED_KEY, id);
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}
