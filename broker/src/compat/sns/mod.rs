//! Amazon SNS on the client port, in the query protocol (`Action=...` forms answered in
//! XML, what every SDK sends to SNS), beside SQS on `/`. Topics and subscriptions are
//! Sluice's own: an SNS subscription is a Sluice subscription named by a generated id,
//! its ARN `arn:aws:sns:<region>:000000000000:<topic>:<id>`.
//!
//! - `sqs` subscriptions deliver into a Sluice queue; without `RawMessageDelivery` the
//!   message reads as an SNS notification over SQS (the subscription's format is `SNS`).
//! - `http` subscriptions push the notification (or the raw body) with SNS's headers.
//! - `email` mails the body, `email-json` the notification.
//!
//! Subscriptions are confirmed when made: Sluice sends no `SubscriptionConfirmation`.

mod actions;
pub mod error;
pub mod notification;
pub mod policy;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::compat::attributes::AttributeInput;
use crate::compat::auth::{self, AccessKey};
use crate::node::Node;
use crate::xml::escape;
use error::SnsError;

/// The XML namespace of SNS answers.
const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// Whether `action` is an SNS action (SQS's actions have other names).
pub fn is_action(action: &str) -> bool {
    actions::ACTIONS.contains(&action)
}

/// What every action knows of the request besides its parameters.
pub struct Ctx {
    pub node: Arc<Node>,
    /// The key that signed the request, when the broker checks signatures.
    pub key: Option<AccessKey>,
}

impl Ctx {
    fn allow_topic(&self, topic: &str) -> Result<(), SnsError> {
        match &self.key {
            Some(key) if !key.allows_topic(topic) => Err(SnsError::authorization(format!(
                "User: {} is not authorized to perform this action on topic {topic}",
                key.access_key_id
            ))),
            _ => Ok(()),
        }
    }

    fn allow_queue(&self, queue: &str) -> Result<(), SnsError> {
        match &self.key {
            Some(key) if !key.allows_queue(queue) => Err(SnsError::authorization(format!(
                "User: {} is not authorized to deliver to queue {queue}",
                key.access_key_id
            ))),
            _ => Ok(()),
        }
    }

    fn region(&self) -> &str {
        &self.node.region
    }
}

/// Runs one SNS request; `params` are the query and form parameters.
pub async fn handle(
    node: Arc<Node>,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
    request_id: String,
) -> Response {
    let key = match auth::request_key(node.access_keys.as_deref(), headers) {
        Ok(key) => key,
        Err(e) => return error_answer(&SnsError::auth(e.code, e.message), &request_id),
    };
    let params = Params(params.into_iter().collect());
    let action = params.get("Action").unwrap_or_default().to_string();
    let ctx = Ctx { node, key };
    match actions::run(&ctx, &action, &params).await {
        Ok(result) => {
            let mut out = format!(r#"<?xml version="1.0"?><{action}Response xmlns="{XMLNS}">"#);
            if let Some(result) = result {
                out.push_str(&format!("<{action}Result>{result}</{action}Result>"));
            }
            out.push_str(&format!(
                "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
            ));
            crate::compat::sqs::xml(StatusCode::OK, out, &request_id)
        }
        Err(e) => error_answer(&e, &request_id),
    }
}

fn error_answer(e: &SnsError, request_id: &str) -> Response {
    let body = format!(
        r#"<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"#,
        e.fault(),
        e.code,
        escape(&e.message)
    );
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    crate::compat::sqs::xml(status, body, request_id)
}

/// Query parameters by their flattened names (`Attributes.entry.1.key`).
#[derive(Debug, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, SnsError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SnsError::missing_parameter(name))
    }

    /// The items of a list or map member, `<prefix>.<n>.<rest>`, in index order, each
    /// with its own parameters named by `<rest>`.
    fn indexed(&self, prefix: &str) -> Result<Vec<Params>, SnsError> {
        let mut items: BTreeMap<u32, Params> = BTreeMap::new();
        let lead = format!("{prefix}.");
        for (name, value) in self.0.range(lead.clone()..) {
            let Some(rest) = name.strip_prefix(&lead) else {
                break;
            };
            let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
            let index: u32 = index.parse().map_err(|_| {
                SnsError::invalid_parameter(format!("{name}: expected {prefix}.<number>.<field>"))
            })?;
            items
                .entry(index)
                .or_default()
                .0
                .insert(field.to_string(), value.clone());
        }
        Ok(items.into_values().collect())
    }

    /// A map member: `<prefix>.entry.<n>.key` / `.value`.
    fn map(&self, prefix: &str) -> Result<BTreeMap<String, String>, SnsError> {
        self.indexed(&format!("{prefix}.entry"))?
            .into_iter()
            .map(|entry| {
                let key = entry.required("key")?.to_string();
                Ok((key, entry.get("value").unwrap_or_default().to_string()))
            })
            .collect()
    }

    /// `MessageAttributes.entry.<n>.Name` / `.Value.DataType` / `.Value.StringValue` /
    /// `.Value.BinaryValue`.
    fn message_attributes(&self) -> Result<BTreeMap<String, AttributeInput>, SnsError> {
        self.indexed("MessageAttributes.entry")?
            .into_iter()
            .map(|entry| {
                let name = entry.required("Name")?.to_string();
                let input = AttributeInput {
                    data_type: entry.required("Value.DataType")?.to_string(),
                    string_value: entry.get("Value.StringValue").map(str::to_string),
                    binary_value: entry.get("Value.BinaryValue").map(str::to_string),
                };
                Ok((name, input))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn flattened_members_are_read_in_index_order() {
        let p = params(&[
            ("Attributes.entry.2.key", "RawMessageDelivery"),
            ("Attributes.entry.2.value", "true"),
            ("Attributes.entry.1.key", "FilterPolicy"),
            ("Attributes.entry.1.value", "{}"),
            ("PublishBatchRequestEntries.member.10.Id", "j"),
            ("PublishBatchRequestEntries.member.2.Id", "b"),
            (
                "PublishBatchRequestEntries.member.2.MessageAttributes.entry.1.Name",
                "n",
            ),
            (
                "PublishBatchRequestEntries.member.2.MessageAttributes.entry.1.Value.DataType",
                "Number",
            ),
            (
                "PublishBatchRequestEntries.member.2.MessageAttributes.entry.1.Value.StringValue",
                "7",
            ),
        ]);
        let map = p.map("Attributes").expect("map");
        assert_eq!(map["RawMessageDelivery"], "true");
        assert_eq!(map["FilterPolicy"], "{}");
        let entries = p
            .indexed("PublishBatchRequestEntries.member")
            .expect("list");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].get("Id"), Some("b"));
        assert_eq!(entries[1].get("Id"), Some("j"));
        let attributes = entries[0].message_attributes().expect("attributes");
        assert_eq!(attributes["n"].data_type, "Number");
        assert_eq!(attributes["n"].string_value.as_deref(), Some("7"));
    }

    #[test]
    fn a_bad_index_is_the_callers_error() {
        let p = params(&[("Tags.member.x.Key", "k")]);
        assert_eq!(
            p.indexed("Tags.member").unwrap_err().code,
            "InvalidParameter"
        );
    }
}
