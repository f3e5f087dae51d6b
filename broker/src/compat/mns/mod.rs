//! Alibaba Cloud Message Service (MNS, XML API version 2015-06-06) on the client port:
//! `/queues/...` and `/topics/...` with XML bodies, as the MNS SDKs send them. Queues,
//! topics and subscriptions are Sluice's own (an MNS subscription is the v1 one of the
//! same name), so the v1 API, SQS and SNS see the same things.
//!
//! Message bodies are opaque text: the SDKs base64-encode queue messages themselves,
//! and get back exactly what they sent.

mod error;
mod queues;
mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::compat::auth::{self, AccessKey};
use crate::node::Node;
use crate::xml::{Element, escape};
pub use error::MnsError;

/// The XML namespace of MNS documents.
const XMLNS: &str = "http://mns.aliyuncs.com/doc/v1/";
/// The account MNS endpoints and owners name: a broker is one account.
const ACCOUNT: &str = "000000000000";
/// Where the types of non-`STRING` user properties are kept among a message's v1
/// attributes.
const PROPERTY_TYPES: &str = "MNS.PropertyTypes";

/// Whether `path` is an MNS resource (`/queues...`, `/topics...`).
pub fn is_mns_path(path: &str) -> bool {
    ["/queues", "/topics"]
        .iter()
        .any(|root| path == *root || path.starts_with(&format!("{root}/")))
}

/// One MNS request, parsed.
pub struct MnsRequest {
    pub method: Method,
    /// Path segments after the resource kind: `["q1", "messages"]` for
    /// `/queues/q1/messages`.
    pub segments: Vec<String>,
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl MnsRequest {
    fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The XML body's root element.
    fn document(&self) -> Result<Element, MnsError> {
        if self.body.is_empty() {
            return Err(MnsError::malformed("the request needs an XML body"));
        }
        Ok(crate::xml::parse(&self.body)?)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    }
}

/// What every action knows besides its request.
pub struct Ctx {
    pub node: Arc<Node>,
    pub key: Option<AccessKey>,
    /// `http://host:port` as the client addressed this broker (Location headers).
    pub base_url: String,
}

impl Ctx {
    fn allow_queue(&self, queue: &str) -> Result<(), MnsError> {
        match &self.key {
            Some(key) if !key.allows_queue(queue) => Err(MnsError::access_denied(format!(
                "the access key {} may not use queue {queue}",
                key.access_key_id
            ))),
            _ => Ok(()),
        }
    }

    fn allow_topic(&self, topic: &str) -> Result<(), MnsError> {
        match &self.key {
            Some(key) if !key.allows_topic(topic) => Err(MnsError::access_denied(format!(
                "the access key {} may not use topic {topic}",
                key.access_key_id
            ))),
            _ => Ok(()),
        }
    }
}

/// An action's success: its status, XML document (if any) and `Location` (if any).
pub struct Answer {
    status: StatusCode,
    body: Option<String>,
    location: Option<String>,
}

impl Answer {
    fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            location: None,
        }
    }

    /// `<root xmlns=...>inner</root>`.
    fn document(status: StatusCode, root: &str, inner: &str) -> Self {
        Self {
            status,
            body: Some(document(root, inner)),
            location: None,
        }
    }

    fn located(status: StatusCode, location: String) -> Self {
        Self {
            status,
            body: None,
            location: Some(location),
        }
    }
}

fn document(root: &str, inner: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{XMLNS}">{inner}</{root}>"#)
}

/// A page of a list: `<root><item><url_field>URL</url_field></item>...</root>`, the
/// first `limit` of `names`, with `NextMarker` (the last name listed) when more remain.
fn list_answer(
    root: &str,
    item: &str,
    url_field: &str,
    names: &[&str],
    limit: usize,
    url: impl Fn(&str) -> String,
) -> Answer {
    let mut xml = crate::xml::Writer::default();
    for name in names.iter().take(limit) {
        xml.open(item).field(url_field, &url(name)).close(item);
    }
    if names.len() > limit {
        xml.field("NextMarker", names[limit - 1]);
    }
    Answer::document(StatusCode::OK, root, &xml.0)
}

/// A whole answer that is not the standard error: a batch's per-entry failures.
pub struct Failure {
    status: StatusCode,
    body: String,
}

/// `/queues`, `/queues/...`, `/topics`, `/topics/...`: every MNS request.
pub async fn serve(
    State(node): State<Arc<Node>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = request_id(&node);
    let key = match auth::request_key(node.access_keys.as_deref(), &headers) {
        Ok(key) => key,
        Err(e) => {
            return error_response(
                &MnsError::new("InvalidAuthorizationHeader", 403, e.message),
                &request_id,
                &headers,
            );
        }
    };
    let mut parts = uri.path().split('/').filter(|s| !s.is_empty());
    let kind = parts.next().unwrap_or_default().to_string();
    let request = MnsRequest {
        method,
        segments: parts.map(str::to_string).collect(),
        query: uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        body,
        headers,
    };
    let ctx = Ctx {
        base_url: crate::compat::sqs::base_url(&request.headers),
        node,
        key,
    };
    let outcome = match kind.as_str() {
        "queues" => queues::run(&ctx, &request).await,
        _ => topics::run(&ctx, &request).await,
    };
    match outcome {
        Ok(answer) => {
            let mut response = match answer.body {
                Some(body) => xml_response(answer.status, body),
                None => answer.status.into_response(),
            };
            if let Some(location) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            decorate(response, &request_id)
        }
        Err(Outcome::Error(e)) => error_response(&e, &request_id, &request.headers),
        Err(Outcome::Failure(f)) => decorate(xml_response(f.status, f.body), &request_id),
    }
}

/// Why an action did not succeed: one error for the request, or a batch's entries.
pub enum Outcome {
    Error(MnsError),
    Failure(Failure),
}

impl<E: Into<MnsError>> From<E> for Outcome {
    fn from(e: E) -> Self {
        Outcome::Error(e.into())
    }
}

/// The standard `<Error>` answer, all four children present as the SDK needs.
pub fn error_response(e: &MnsError, request_id: &str, headers: &HeaderMap) -> Response {
    let host = crate::compat::sqs::base_url(headers);
    let body = document(
        "Error",
        &format!(
            "<Code>{}</Code><Message>{}</Message><RequestId>{request_id}</RequestId><HostId>{}</HostId>",
            e.code,
            escape(&e.message),
            escape(&host)
        ),
    );
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    decorate(xml_response(status, body), request_id)
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=utf-8"),
    );
    response
}

/// MNS's answer headers: the request id (lowercase: the SDK looks it up so) and version.
fn decorate(mut response: Response, request_id: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-mns-request-id", id);
    }
    headers.insert("x-mns-version", HeaderValue::from_static("2015-06-06"));
    if !headers.contains_key(header::CONTENT_TYPE)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|l| l != "0")
    {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml;charset=utf-8"),
        );
    }
    response
}

/// A refusal by the signature check, before the request reaches [`serve`].
pub fn refuse(e: auth::AuthError, headers: &HeaderMap, node: &Node) -> Response {
    let status = match e.code {
        "TimeExpired" => 408,
        "InvalidAuthorizationHeader" | "InvalidArgument" => 400,
        _ => 403,
    };
    error_response(
        &MnsError::new(e.code, status, e.message),
        &request_id(node),
        headers,
    )
}

/// A request id unique on this node, 24 hex digits as MNS's look.
fn request_id(node: &Node) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:04X}{:08X}{:012X}",
        node.node_id & 0xffff,
        (crate::raft::now_ms() / 1000) & 0xffff_ffff,
        n & 0xffff_ffff_ffff
    )
}

/// MNS's MessageBodyMD5: uppercase hex MD5 of the body text as sent.
fn body_md5(body: &str) -> String {
    crate::compat::sqs::digest::md5_hex(body.as_bytes()).to_ascii_uppercase()
}

/// A whole number from a request element or parameter.
fn number(name: &str, text: &str) -> Result<i64, MnsError> {
    text.trim()
        .parse()
        .map_err(|_| MnsError::invalid(format!("{name} must be a whole number, not {text:?}")))
}

/// Seconds since the epoch, for the times of queues, topics and subscriptions.
fn seconds(at: chrono::DateTime<chrono::Utc>) -> String {
    at.timestamp().to_string()
}

/// `UserProperties` of a message as v1 attributes: values as text (BINARY stays
/// base64), non-`STRING` types kept under [`PROPERTY_TYPES`].
fn properties_to_v1(message: &Element) -> Result<BTreeMap<String, String>, MnsError> {
    let mut out = BTreeMap::new();
    let mut types = serde_json::Map::new();
    let Some(properties) = message.child("UserProperties") else {
        return Ok(out);
    };
    for p in properties
        .children
        .iter()
        .filter(|c| c.name == "PropertyValue")
    {
        let name = p.text_of("Name").unwrap_or_default();
        let value = p.text_of("Value").unwrap_or_default();
        let kind = p.text_of("Type").unwrap_or("STRING");
        if name.is_empty() {
            return Err(MnsError::invalid("a user property has no Name"));
        }
        let ok = match kind {
            "STRING" | "BINARY" => true,
            "NUMBER" => value.trim().parse::<f64>().is_ok(),
            "BOOLEAN" => matches!(value, "true" | "false"),
            _ => false,
        };
        if !ok {
            return Err(MnsError::invalid(format!(
                "user property {name}: {value:?} is not a {kind} (types are STRING, NUMBER, BOOLEAN, BINARY)"
            )));
        }
        if kind != "STRING" {
            types.insert(
                name.to_string(),
                serde_json::Value::String(kind.to_string()),
            );
        }
        out.insert(name.to_string(), value.to_string());
    }
    if !types.is_empty() {
        out.insert(
            PROPERTY_TYPES.to_string(),
            serde_json::Value::Object(types).to_string(),
        );
    }
    Ok(out)
}

/// A message's v1 attributes as `<UserProperties>`; empty when it has none. Attributes
/// of other protocols (`AWS.`, `MNS.` names) are left out.
fn properties_xml(attributes: &BTreeMap<String, String>) -> String {
    let types: serde_json::Map<String, serde_json::Value> = attributes
        .get(PROPERTY_TYPES)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut xml = crate::xml::Writer::default();
    let mut any = false;
    xml.open("UserProperties");
    for (name, value) in attributes {
        if name.starts_with("AWS.") || name.starts_with("MNS.") || value.is_empty() {
            continue;
        }
        any = true;
        let kind = types.get(name).and_then(|t| t.as_str()).unwrap_or("STRING");
        xml.open("PropertyValue")
            .field("Name", name)
            .field("Value", value)
            .field("Type", kind)
            .close("PropertyValue");
    }
    xml.close("UserProperties");
    if any { xml.0 } else { String::new() }
}
