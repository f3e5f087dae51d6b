//! Access keys and AWS Signature Version 4, for the AWS protocols.
//!
//! Off unless the broker is given a key file (`--access-keys`); then every SQS and SNS
//! request must be signed with one of its keys, and a key may be limited to named queues
//! and topics. The
//! node a client reaches verifies the signature (it sees the host and path that were
//! signed) and passes the key on when it forwards the request to the leader.

use std::collections::HashMap;
use std::path::Path;

use axum::http::HeaderMap;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// How far a request's `X-Amz-Date` may be from this node's clock, as AWS allows.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The header that carries a verified key id from the node that checked it to the
/// leader it forwards to.
pub const VERIFIED_KEY: &str = "x-sluice-access-key";

/// One access key and what it may reach.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Who the key belongs to, for logs.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Queues the key may use: names, or prefixes ending in `*`; every queue when absent.
    #[serde(default)]
    pub queues: Option<Vec<String>>,
    /// Topics the key may use, the same way; every topic when absent.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
}

fn allowed(patterns: &Option<Vec<String>>, name: &str) -> bool {
    patterns.as_ref().is_none_or(|patterns| {
        patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    })
}

impl AccessKey {
    pub fn allows_queue(&self, name: &str) -> bool {
        allowed(&self.queues, name)
    }

    pub fn allows_topic(&self, name: &str) -> bool {
        allowed(&self.topics, name)
    }
}

/// The key the `authenticate` middleware verified for a request: `Ok(None)` when the
/// broker checks no signatures, an error when it does and the request carries none.
pub fn request_key(
    keys: Option<&AccessKeys>,
    headers: &HeaderMap,
) -> Result<Option<AccessKey>, AuthError> {
    let Some(keys) = keys else {
        return Ok(None);
    };
    headers
        .get(VERIFIED_KEY)
        .and_then(|k| k.to_str().ok())
        .and_then(|id| keys.get(id))
        .map(|key| Some(key.clone()))
        .ok_or_else(|| AuthError {
            code: "MissingAuthenticationToken",
            message: "the request is not signed with one of this broker's access keys".into(),
        })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyFile {
    keys: Vec<AccessKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("reading the access key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the access key file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("the access key file {path} {problem}")]
    Invalid { path: String, problem: String },
}

/// The broker's access keys, by id.
#[derive(Debug, Default)]
pub struct AccessKeys {
    by_id: HashMap<String, AccessKey>,
}

impl AccessKeys {
    /// Reads a JSON file `{"keys": [{"accessKeyId", "secretAccessKey", "tenant",
    /// "queues"}]}` (a Kubernetes Secret mounted as a file works as is).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|source| KeyFileError::Parse {
            path: shown.clone(),
            source,
        })?;
        let invalid = |problem: String| KeyFileError::Invalid {
            path: shown.clone(),
            problem,
        };
        if file.keys.is_empty() {
            return Err(invalid("has no keys".into()));
        }
        let mut by_id = HashMap::new();
        for key in file.keys {
            if key.access_key_id.is_empty() || key.secret_access_key.is_empty() {
                return Err(invalid("has a key with an empty id or secret".into()));
            }
            if let Some(old) = by_id.insert(key.access_key_id.clone(), key) {
                return Err(invalid(format!(
                    "lists the key {} twice",
                    old.access_key_id
                )));
            }
        }
        Ok(Self { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&AccessKey> {
        self.by_id.get(id)
    }
}

/// Why a request's signature was refused, with the code AWS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub code: &'static str,
    pub message: String,
}

fn refused(code: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        code,
        message: message.into(),
    }
}

/// The parts of a request a signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The host the client addressed (a forwarding node's `Host` is not it).
    pub host: &'a str,
}

/// The fields of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        refused(
            "IncompleteSignature",
            "the Authorization header must be an AWS Signature Version 4 (AWS4-HMAC-SHA256)",
        )
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let incomplete = || {
        refused(
            "IncompleteSignature",
            "the Authorization header needs Credential, SignedHeaders and Signature",
        )
    };
    let credential = credential.ok_or_else(incomplete)?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(refused(
            "IncompleteSignature",
            format!("the credential {credential:?} is not key/date/region/service/aws4_request"),
        ));
    };
    Ok(Authorization {
        key_id,
        date,
        region,
        service,
        signed_headers: signed.ok_or_else(incomplete)?.split(';').collect(),
        signature: signature.ok_or_else(incomplete)?,
    })
}

/// RFC 3986 encoding as SigV4 asks: everything but unreserved characters.
fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn header_value(request: &SignedRequest, name: &str) -> String {
    if name == "host" {
        return request.host.to_string();
    }
    let values: Vec<String> = request
        .headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    values.join(",")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a request's SigV4 signature against the keys; the key it was signed with.
pub fn verify<'k>(
    keys: &'k AccessKeys,
    request: &SignedRequest,
    now: DateTime<Utc>,
) -> Result<&'k AccessKey, AuthError> {
    let header = request
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            refused(
                "MissingAuthenticationToken",
                "the request is not signed; this broker requires AWS Signature Version 4 with one of its access keys",
            )
        })?;
    let auth = parse_authorization(header)?;
    let key = keys.get(auth.key_id).ok_or_else(|| {
        refused(
            "InvalidClientTokenId",
            "The security token included in the request is invalid: no such access key",
        )
    })?;
    let amz_date = header_value(request, "x-amz-date");
    let signed_at = NaiveDateTime::parse_from_str(&amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| refused("IncompleteSignature", "X-Amz-Date is missing or malformed"))?
        .and_utc();
    if (now - signed_at).num_seconds().abs() > MAX_SKEW_SECONDS {
        return Err(refused(
            "RequestExpired",
            format!("the request was signed at {amz_date}, more than 15 minutes from now"),
        ));
    }
    if !amz_date.starts_with(auth.date) {
        return Err(refused(
            "SignatureDoesNotMatch",
            "the credential's date is not the date of X-Amz-Date",
        ));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(refused(
            "SignatureDoesNotMatch",
            "the signature must cover the host header",
        ));
    }
    let payload_hash = match request.headers.get("x-amz-content-sha256") {
        Some(v) if v.as_bytes() != b"UNSIGNED-PAYLOAD" => {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        _ => hex(&Sha256::digest(request.body)),
    };
    let canonical_headers: String = auth
        .signed_headers
        .iter()
        .map(|name| format!("{name}:{}\n", header_value(request, name)))
        .collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        if request.path.is_empty() {
            "/"
        } else {
            request.path
        },
        canonical_query(request.query),
        canonical_headers,
        auth.signed_headers.join(";"),
        payload_hash
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut signing_key = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        auth.date.as_bytes(),
    );
    for part in [auth.region, auth.service, "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes());
    }
    let expected = hex(&hmac(&signing_key, string_to_sign.as_bytes()));
    if !same(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(refused(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(key)
}

/// Checks an MNS request's signature (`Authorization: MNS <key id>:<signature>`, the
/// base64 HMAC-SHA1 of method, Content-MD5, Content-Type, Date, the `x-mns-*` headers
/// and the path with its query); the key it was signed with. `resource` is the path
/// and query as the client sent them.
pub fn verify_mns<'k>(
    keys: &'k AccessKeys,
    method: &str,
    headers: &HeaderMap,
    resource: &str,
    now: DateTime<Utc>,
) -> Result<&'k AccessKey, AuthError> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let header = text("authorization");
    let (key_id, signature) = header
        .strip_prefix("MNS ")
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(|| {
            refused(
                "InvalidAuthorizationHeader",
                "the request is not signed; this broker requires an MNS signature (Authorization: MNS <AccessKeyId>:<Signature>) with one of its access keys",
            )
        })?;
    let key = keys.get(key_id).ok_or_else(|| {
        refused(
            "InvalidAccessKeyId",
            format!("the access key {key_id:?} is not one of this broker's"),
        )
    })?;
    let date = text("date");
    let signed_at = DateTime::parse_from_rfc2822(&date)
        .map_err(|_| refused("InvalidArgument", "the Date header is missing or malformed"))?;
    if (now - signed_at.with_timezone(&Utc)).num_seconds().abs() > MAX_SKEW_SECONDS {
        return Err(refused(
            "TimeExpired",
            format!("the request is dated {date}, more than 15 minutes from now"),
        ));
    }
    let mut mns_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-mns-"))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    mns_headers.sort();
    let canonical_headers: String = mns_headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let string_to_sign = format!(
        "{method}\n{}\n{}\n{date}\n{canonical_headers}{resource}",
        text("content-md5"),
        text("content-type"),
    );
    let mut mac = Hmac::<Sha1>::new_from_slice(key.secret_access_key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if !same(expected.as_bytes(), signature.as_bytes()) {
        return Err(refused(
            "SignatureDoesNotMatch",
            "the request signature does not match the one computed with the access key's secret",
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys() -> AccessKeys {
        let key = AccessKey {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            tenant: None,
            queues: Some(vec!["orders".into(), "team-*".into()]),
            topics: Some(vec!["events".into()]),
        };
        AccessKeys {
            by_id: HashMap::from([(key.access_key_id.clone(), key)]),
        }
    }

    /// AWS's published SigV4 example (the "get-vanilla-query-order-key-case" case of the
    /// test suite: GET /?Param2=value2&Param1=value1, service "service").
    #[test]
    fn verifies_aws_published_example() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
        );
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &headers,
            body: b"",
            host: "example.amazonaws.com",
        };
        let at = NaiveDateTime::parse_from_str("20150830T123600Z", "%Y%m%dT%H%M%SZ")
            .expect("date")
            .and_utc();
        let keys = keys();
        assert_eq!(
            verify(&keys, &request, at).expect("valid").access_key_id,
            "AKIDEXAMPLE"
        );
        // One changed byte of the request, or a late arrival, is refused.
        let tampered = SignedRequest {
            query: "Param2=value2&Param1=value3",
            ..request
        };
        assert_eq!(
            verify(&keys, &tampered, at).unwrap_err().code,
            "SignatureDoesNotMatch"
        );
        let late = at + chrono::Duration::minutes(16);
        assert_eq!(
            verify(&keys, &request, late).unwrap_err().code,
            "RequestExpired"
        );
    }

    /// A request the MNS Python SDK signed (secret `SECRET`), recorded: CreateQueue.
    #[test]
    fn mns_signatures_are_checked_over_method_headers_and_resource() {
        let key = AccessKey {
            access_key_id: "AKID".into(),
            secret_access_key: "SECRET".into(),
            tenant: None,
            queues: None,
            topics: None,
        };
        let keys = AccessKeys {
            by_id: HashMap::from([(key.access_key_id.clone(), key)]),
        };
        let date = "Mon, 30 Nov 2026 18:40:59 GMT";
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (
                "content-md5",
                "ZWYzOGYxMDNmODQzMTg1MGFkYTE5NzUwMjcwMzgwMTk=",
            ),
            ("content-type", "text/xml;charset=UTF-8"),
            ("x-mns-version", "2015-06-06"),
            ("date", date),
            ("authorization", "MNS AKID:cTisZ9L666+p7KoMwTetL1TsmiM="),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let now = DateTime::parse_from_rfc2822(date)
            .expect("date")
            .with_timezone(&Utc);
        let key = verify_mns(&keys, "PUT", &headers, "/queues/q1", now).expect("valid");
        assert_eq!(key.access_key_id, "AKID");
        // Another resource, method or version header, or a late clock: refused.
        let refused = |method: &str, resource: &str, headers: &HeaderMap, now| {
            verify_mns(&keys, method, headers, resource, now)
                .expect_err("refused")
                .code
        };
        assert_eq!(
            refused("PUT", "/queues/q2", &headers, now),
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            refused("POST", "/queues/q1", &headers, now),
            "SignatureDoesNotMatch"
        );
        let mut other = headers.clone();
        other.insert("x-mns-version", HeaderValue::from_static("2015-06-07"));
        assert_eq!(
            refused("PUT", "/queues/q1", &other, now),
            "SignatureDoesNotMatch"
        );
        let later = now + chrono::Duration::minutes(16);
        assert_eq!(refused("PUT", "/queues/q1", &headers, later), "TimeExpired");
        other = headers.clone();
        other.insert("authorization", HeaderValue::from_static("MNS nobody:x"));
        assert_eq!(
            refused("PUT", "/queues/q1", &other, now),
            "InvalidAccessKeyId"
        );
        other.remove("authorization");
        assert_eq!(
            refused("PUT", "/queues/q1", &other, now),
            "InvalidAuthorizationHeader"
        );
    }

    #[test]
    fn keys_reach_only_their_queues() {
        let keys = keys();
        let key = keys.get("AKIDEXAMPLE").expect("key");
        assert!(key.allows_queue("orders"));
        assert!(key.allows_queue("team-a"));
        assert!(!key.allows_queue("orders2"));
        assert!(key.allows_topic("events"));
        assert!(!key.allows_topic("orders"));
    }
}
