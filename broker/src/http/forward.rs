//! Any node serves any request: a request is served by the leader of the group that holds
//! the queue or topic it names (the metadata group's leader for lists and the cluster).
//! Another node passes the request on to that leader's peer port (which serves the client
//! API under `/api`) and relays the answer. A forwarded request is marked, so it is never
//! forwarded twice.

use std::borrow::Cow;
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
use crate::node::{LEADER_WAIT, Node};

/// Marks a request another node forwarded (its value: that node's id).
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-sluice-forwarded-by");
/// Longer than the longest long poll.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(45);
/// Between attempts to reach a leader that did not answer.
const RESEND_PAUSE: Duration = Duration::from_millis(50);
/// On every answer of a broker's peer port. An empty 404 without it came from something
/// else at that address (on Kubernetes, a Service's address before kube-proxy routes it
/// reaches whatever the default route leads to; here, a gateway that answers so).
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-sluice-node");

/// Requests every node answers itself: health, the console's files, and WebSocket
/// streams (served from the node's own replica of the timeline).
fn served_locally(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path == "/console"
        || path.starts_with("/console/")
        || (path.starts_with("/v1/topics/") && path.ends_with("/stream"))
}

/// The middleware: serves the request here when this node leads the group it needs (or
/// the request was forwarded already), else relays it to that group's leader.
pub async fn forward(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    if served_locally(request.uri().path()) || request.headers().contains_key(&FORWARDED_BY) {
        return next.run(request).await;
    }
    let (request, name) = match named_entity(request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let group = match &name {
        Some(name) => node.group_of(name),
        None => node.meta(),
    };
    // One wait in all, for an election and for a leader that answers.
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    if group.leader().is_none() {
        // An election (a failover or a leadership handoff) is under way: hold the request
        // until it ends rather than fail it.
        group.wait_for_leader(LEADER_WAIT).await;
    }
    if group.is_leader() {
        return next.run(request).await;
    }
    if group.leader().is_none() {
        return HttpError::new(
            ErrorCode::Unavailable,
            "no leader yet (an election is under way); retry shortly",
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return HttpError::invalid(format!("could not read the request body: {e}"))
                .into_response();
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // A leader that cannot be reached never saw the request, so it is sent again (to a new
    // leader once one is elected, to this node's own peer port if it leads now) until
    // one answers or the wait for a leader runs out.
    loop {
        // The leader it tried may have died, and the election to replace it (or a
        // handoff that follows it) may be under way: wait for it within the same deadline.
        let leader = match group.leader() {
            Some((_, leader)) => leader,
            None => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match group.wait_for_leader(left).await {
                    Some((_, leader)) => leader,
                    None => return Unreached.into(),
                }
            }
        };
        let sent = send(
            &node,
            &leader,
            parts.method.clone(),
            path,
            &parts.headers,
            body.clone(),
        )
        .await;
        match sent {
            Ok(answer) => return answer,
            Err(Unreached) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(RESEND_PAUSE).await;
            }
            Err(Unreached) => return Unreached.into(),
        }
    }
}

/// The node a request was forwarded to could not be reached (or something else answered
/// at its address): it never received the request.
pub struct Unreached;

impl From<Unreached> for Response {
    fn from(_: Unreached) -> Response {
        HttpError::new(
            ErrorCode::Unavailable,
            "the leader did not answer (it may be failing over); retry shortly",
        )
        .into_response()
    }
}

/// The queue or topic a request names, which decides the group that serves it: from the
/// path (the v1 API, MNS, SQS queue URLs), else from an SQS or SNS request's parameters
/// (`QueueUrl`, `QueueName`, `TopicArn`, `SubscriptionArn`, `TargetArn`, `ResourceArn`,
/// `Name`), for which the body is read and put back.
async fn named_entity(request: Request) -> Result<(Request, Option<String>), Response> {
    let path = request.uri().path();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let from_path = match segments.as_slice() {
        ["v1", "queues" | "topics", name, ..] => Some(name.to_string()),
        ["v1", ..] => return Ok((request, None)),
        ["queues" | "topics", name, ..] => Some(name.to_string()),
        ["queues" | "topics"] => return Ok((request, None)),
        [_account, queue] => Some(queue.to_string()),
        _ => None,
    };
    if from_path.is_some() || !segments.is_empty() {
        return Ok((request, from_path));
    }
    // An SQS or SNS request to `/`: its parameters are in the query or the body.
    if let Some(name) = request
        .uri()
        .query()
        .and_then(|q| aws_name(q.as_bytes(), false))
    {
        return Ok((request, Some(name)));
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        HttpError::invalid(format!("could not read the request body: {e}")).into_response()
    })?;
    let name = aws_name(&body, json);
    Ok((Request::from_parts(parts, Body::from(body)), name))
}

/// The naming parameters of an SQS JSON request, in the order of `aws_name`'s keys.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonNames<'a> {
    #[serde(borrow, default)]
    queue_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    queue_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    topic_arn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subscription_arn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    target_arn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resource_arn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// The queue or topic named by SQS or SNS parameters (a JSON object or a form).
fn aws_name(params: &[u8], json: bool) -> Option<String> {
    /// In order of preference.
    const KEYS: [&str; 7] = [
        "QueueUrl",
        "QueueName",
        "TopicArn",
        "SubscriptionArn",
        "TargetArn",
        "ResourceArn",
        "Name",
    ];
    let name = |key: &str, value: &str| -> Option<String> {
        match key {
            "QueueUrl" => value.trim_end_matches('/').rsplit('/').next(),
            // arn:aws:sns:region:account:topic[:subscription]
            "TopicArn" | "SubscriptionArn" | "TargetArn" | "ResourceArn" => value.split(':').nth(5),
            _ => Some(value),
        }
        .filter(|name| !name.is_empty())
        .map(str::to_string)
    };
    // Only the naming parameters are kept: message bodies in the same request are
    // skipped, not copied.
    let found: [Option<Cow<'_, str>>; KEYS.len()] = if json {
        let n: JsonNames<'_> = serde_json::from_slice(params).ok()?;
        [
            n.queue_url,
            n.queue_name,
            n.topic_arn,
            n.subscription_arn,
            n.target_arn,
            n.resource_arn,
            n.name,
        ]
    } else {
        let mut found: [Option<Cow<'_, str>>; KEYS.len()] = Default::default();
        for (key, value) in form_urlencoded::parse(params) {
            if let Some(i) = KEYS.iter().position(|k| *k == key) {
                found[i].get_or_insert(value);
            }
        }
        found
    };
    KEYS.iter()
        .zip(&found)
        .find_map(|(key, value)| name(key, value.as_deref()?))
}

/// Sends one request to another node's client API (under its peer port's `/api`) and
/// answers what it answered; `Unreached` when no connection to it could be made.
pub async fn send(
    node: &Node,
    peer_addr: &str,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, Unreached> {
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
        Err(e) if e.is_connect() => {
            tracing::debug!(error = %e, leader = peer_addr, "could not reach the leader");
            return Err(Unreached);
        }
        Err(e) => {
            tracing::debug!(error = %e, leader = peer_addr, "forwarding failed");
            return Ok(HttpError::new(
                ErrorCode::Unavailable,
                "the leader did not answer (it may be failing over); its outcome is unknown, retry",
            )
            .into_response());
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
    let by_broker = answer.headers().contains_key(SERVED_BY.as_str());
    Ok(match answer.bytes().await {
        // An empty 404 without a broker's mark: no route of a broker took the request
        // (something else holds the address, or a broker's peer port from before the
        // mark, which answers unknown routes so). It may go again.
        Ok(bytes) if !by_broker && status == StatusCode::NOT_FOUND && bytes.is_empty() => {
            tracing::warn!(
                leader = peer_addr,
                "the leader's address answered an empty 404, not as a Sluice broker"
            );
            return Err(Unreached);
        }
        Ok(bytes) => (status, response_headers, Body::from(bytes)).into_response(),
        Err(_) => HttpError::new(
            ErrorCode::Unavailable,
            "the leader's answer was cut off; its outcome is unknown, retry",
        )
        .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::aws_name;

    #[test]
    fn aws_parameters_name_the_queue_or_topic() {
        assert_eq!(
            aws_name(
                b"Action=SendMessage&QueueUrl=http%3A%2F%2Fh%3A1%2F000000000000%2Forders",
                false
            )
            .as_deref(),
            Some("orders")
        );
        assert_eq!(
            aws_name(br#"{"QueueUrl":"http://h:1/000000000000/jobs.fifo"}"#, true).as_deref(),
            Some("jobs.fifo")
        );
        assert_eq!(
            aws_name(
                b"Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3Anews",
                false
            )
            .as_deref(),
            Some("news")
        );
        assert_eq!(
            aws_name(
                b"Action=Unsubscribe&SubscriptionArn=arn:aws:sns:r:0:news:s-1",
                false
            )
            .as_deref(),
            Some("news")
        );
        assert_eq!(
            aws_name(b"Action=CreateTopic&Name=alerts", false).as_deref(),
            Some("alerts")
        );
        assert_eq!(aws_name(b"Action=ListQueues", false), None);
        assert_eq!(aws_name(br#"{"QueueNamePrefix":"a"}"#, true), None);
    }
}
