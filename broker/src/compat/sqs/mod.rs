//! Amazon SQS on the client port. A request is SQS when it carries
//! `X-Amz-Target: AmazonSQS.<Action>` (the AWS JSON 1.0 protocol) or an `Action`
//! parameter (the query protocol, posted to `/` or to a queue URL). Both run the same
//! actions (`actions.rs`) over the v1 handlers. Query requests to `/` whose action is
//! SNS's go on to [`crate::compat::sns`].

pub mod actions;
pub mod attempts;
pub mod digest;
pub mod error;
pub mod query;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sluice_client::ErrorCode;

use crate::compat::auth;
use crate::http::error::HttpError;
use crate::node::Node;
use actions::Ctx;
use error::SqsError;

const TARGET_PREFIX: &str = "AmazonSQS.";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The host the client addressed, set by a node that forwards a request to the leader.
pub const FORWARDED_HOST: &str = "x-forwarded-host";

/// `/`: SQS in either protocol; anything else is an unknown route.
pub async fn serve(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    handle(node, &headers, &uri, &body, None).await
}

/// `/{account}/{queue}`: the query protocol posted to a queue URL.
pub async fn serve_queue_url(
    State(node): State<Arc<Node>>,
    Path((_account, queue)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    handle(node, &headers, &uri, &body, Some(queue)).await
}

async fn handle(
    node: Arc<Node>,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
    url_queue: Option<String>,
) -> Response {
    let request_id = request_id(&node);
    let mut params: Vec<(String, String)> = Vec::new();
    if target(headers).is_none() {
        params.extend(
            uri.query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
        params.extend(form_urlencoded::parse(body).into_owned());
        // SNS shares the query protocol and the path `/`; its actions have their own names.
        if url_queue.is_none()
            && params
                .iter()
                .any(|(k, v)| k == "Action" && crate::compat::sns::is_action(v))
        {
            return crate::compat::sns::handle(node, headers, params, request_id).await;
        }
    }
    let key = match auth::request_key(node.access_keys.as_deref(), headers) {
        Ok(key) => key,
        Err(e) => return refuse(headers, SqsError::auth(e), &request_id),
    };
    let ctx = Ctx {
        base_url: base_url(headers),
        node,
        key,
    };
    if let Some(action) = target(headers) {
        let result =
            match serde_json::from_slice::<Value>(if body.is_empty() { b"{}" } else { body }) {
                Ok(input) => actions::run(&ctx, action, input).await,
                Err(e) => Err(SqsError::malformed(format!(
                    "the request body is not JSON: {e}"
                ))),
            };
        return json_answer(result, &request_id);
    }
    if !params.iter().any(|(k, _)| k == "Action") {
        return HttpError::new(
            ErrorCode::NotFound,
            "no such route; see the API reference in the README (SQS requests carry X-Amz-Target or Action)",
        )
        .into_response();
    }
    if let Some(queue) = url_queue
        && !params.iter().any(|(k, _)| k == "QueueUrl")
    {
        params.push((
            "QueueUrl".into(),
            format!("{}/{}/{queue}", ctx.base_url, actions::ACCOUNT),
        ));
    }
    let (action, result) = match query::parse(&params) {
        Ok((action, input)) => {
            let result = actions::run(&ctx, &action, input).await;
            (action, result)
        }
        Err(e) => (String::new(), Err(e)),
    };
    match result {
        Ok(output) => xml(
            StatusCode::OK,
            query::render(&action, &output, &request_id),
            &request_id,
        ),
        Err(e) => xml(
            status(&e),
            query::render_error(&e, &request_id),
            &request_id,
        ),
    }
}

/// The action of a JSON-protocol request.
fn target(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
}

/// An error answer in the protocol the request used.
pub fn refuse(headers: &HeaderMap, e: SqsError, request_id: &str) -> Response {
    if target(headers).is_some() {
        json_answer(Err(e), request_id)
    } else {
        xml(status(&e), query::render_error(&e, request_id), request_id)
    }
}

fn status(e: &SqsError) -> StatusCode {
    StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)
}

fn json_answer(result: Result<Value, SqsError>, request_id: &str) -> Response {
    let (status, body, query_error) = match result {
        Ok(output) => (StatusCode::OK, output, None),
        Err(e) => (
            status(&e),
            serde_json::json!({
                "__type": format!("com.amazonaws.sqs#{}", e.shape),
                "message": e.message,
            }),
            Some(format!("{};{}", e.query_code, e.fault())),
        ),
    };
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(q) = query_error.and_then(|q| HeaderValue::from_str(&q).ok()) {
        headers.insert("x-amzn-query-error", q);
    }
    response
}

pub fn xml(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// `http://host:port` as the client addressed this broker (queue URLs point there).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(FORWARDED_HOST)
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A request id unique on this node: node id, start time and a counter.
pub fn request_id(node: &Node) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-{:016x}",
        node.node_id,
        (crate::raft::now_ms() / 1000) & 0xffff,
        n
    )
}
