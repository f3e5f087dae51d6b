//! Any node serves any request: one that is not the leader passes the request on to the
//! leader's peer port (which serves the client API under `/api`) and relays the answer.
//! A forwarded request is marked, so it is never forwarded twice.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_client::ErrorCode;

use super::BODY_LIMIT;
use super::error::HttpError;
use crate::node::Node;

/// Marks a request another node forwarded (its value: that node's id).
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-sluice-forwarded-by");
/// Longer than the longest long poll.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(45);

/// Requests every node answers itself: health, the console's files, and WebSocket
/// streams (served from the node's own replica of the timeline).
fn served_locally(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path == "/console"
        || path.starts_with("/console/")
        || (path.starts_with("/v1/topics/") && path.ends_with("/stream"))
}

/// The middleware: serves the request here when this node leads (or the request was
/// forwarded already), else relays it to the leader.
pub async fn forward(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    if served_locally(request.uri().path())
        || request.headers().contains_key(&FORWARDED_BY)
        || node.group.is_leader()
    {
        return next.run(request).await;
    }
    match node.group.leader() {
        Some((_, peer_addr)) => relay(&node, &peer_addr, request).await,
        None => HttpError::new(
            ErrorCode::Unavailable,
            "no leader yet (an election is under way); retry shortly",
        )
        .into_response(),
    }
}

/// Sends `request` to the client API of the node at `peer_addr` and returns its answer.
pub async fn relay(node: &Node, peer_addr: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return HttpError::invalid(format!("could not read the request body: {e}"))
                .into_response();
        }
    };
    send(node, peer_addr, parts.method, path, &parts.headers, body).await
}

/// Sends one request to another node's client API (under its peer port's `/api`).
pub async fn send(
    node: &Node,
    peer_addr: &str,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Response {
    // The leader serves the client API under `/api`; SQS requests go to `/`.
    let path_and_query = path_and_query.strip_prefix("/?").map_or(
        if path_and_query == "/" {
            ""
        } else {
            path_and_query
        }
        .to_string(),
        |query| format!("?{query}"),
    );
    let mut out = node
        .http
        .request(method, format!("http://{peer_addr}/api{path_and_query}"))
        .timeout(FORWARD_TIMEOUT)
        .header(FORWARDED_BY, node.node_id.to_string())
        .body(body);
    let idempotency = HeaderName::from_static(sluice_client::IDEMPOTENCY_KEY);
    let target = HeaderName::from_static("x-amz-target");
    for name in [
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::AUTHORIZATION,
        HeaderName::from_static(crate::compat::auth::VERIFIED_KEY),
        idempotency,
        target,
    ] {
        if let Some(value) = headers.get(&name) {
            out = out.header(name, value);
        }
    }
    // MNS list requests page with x-mns-prefix, x-mns-marker and x-mns-ret-number.
    for (name, value) in headers {
        if name.as_str().starts_with("x-mns-") {
            out = out.header(name, value);
        }
    }
    // SQS queue URLs name the host the client addressed, not the leader's peer port.
    if let Some(host) = headers
        .get(crate::compat::sqs::FORWARDED_HOST)
        .or_else(|| headers.get(header::HOST))
    {
        out = out.header(crate::compat::sqs::FORWARDED_HOST, host);
    }
    let answer = match out.send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(error = %e, leader = peer_addr, "forwarding failed");
            return HttpError::new(
                ErrorCode::Unavailable,
                "the leader did not answer (it may be failing over); retry shortly",
            )
            .into_response();
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response_headers = HeaderMap::new();
    let protocol_headers = [
        HeaderName::from_static("x-amzn-query-error"),
        HeaderName::from_static("x-amzn-requestid"),
        HeaderName::from_static("x-mns-request-id"),
        HeaderName::from_static("x-mns-version"),
    ];
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER, header::LOCATION]
        .into_iter()
        .chain(protocol_headers)
    {
        if let Some(value) = answer.headers().get(name.as_str())
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            response_headers.insert(name, value);
        }
    }
    match answer.bytes().await {
        Ok(bytes) => (status, response_headers, Body::from(bytes)).into_response(),
        Err(_) => HttpError::new(
            ErrorCode::Unavailable,
            "the leader's answer was cut off; its outcome is unknown, retry",
        )
        .into_response(),
    }
}
