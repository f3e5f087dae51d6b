//! The JSON notification Amazon SNS delivers (`"Type": "Notification"`): what an HTTP
//! endpoint, an `email-json` address, or an SQS consumer of a subscription without
//! `RawMessageDelivery` parses. Sluice does not sign it with an AWS certificate; HTTP
//! pushes carry Sluice's HMAC signature header instead.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::compat::attributes::{SUBJECT, from_v1_attributes};
use crate::compat::sqs::actions::ACCOUNT;

pub fn topic_arn(region: &str, topic: &str) -> String {
    format!("arn:aws:sns:{region}:{ACCOUNT}:{topic}")
}

pub fn subscription_arn(region: &str, topic: &str, subscription: &str) -> String {
    format!("{}:{subscription}", topic_arn(region, topic))
}

/// What a notification is made of, read from a topic message or a queue message.
pub struct Published<'a> {
    pub region: &'a str,
    pub topic: &'a str,
    pub id: &'a str,
    /// The body as text; a body published as bytes comes in base64.
    pub body: &'a str,
    pub published_at: DateTime<Utc>,
    /// v1 attributes, with the SQS/SNS data types and subject kept under `AWS.` names.
    pub attributes: &'a BTreeMap<String, String>,
}

/// The notification document.
pub fn render(p: &Published) -> String {
    let mut doc = Map::new();
    doc.insert("Type".into(), json!("Notification"));
    doc.insert("MessageId".into(), json!(p.id));
    doc.insert("TopicArn".into(), json!(topic_arn(p.region, p.topic)));
    if let Some(subject) = p.attributes.get(SUBJECT) {
        doc.insert("Subject".into(), json!(subject));
    }
    doc.insert("Message".into(), json!(p.body));
    doc.insert(
        "Timestamp".into(),
        json!(p.published_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    let attributes: Map<String, Value> = from_v1_attributes(p.attributes)
        .into_iter()
        .map(|(name, a)| {
            let value = if a.is_binary() {
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &a.value)
            } else {
                String::from_utf8_lossy(&a.value).into_owned()
            };
            (name, json!({"Type": a.data_type, "Value": value}))
        })
        .collect();
    if !attributes.is_empty() {
        doc.insert("MessageAttributes".into(), Value::Object(attributes));
    }
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_the_message_subject_and_typed_attributes() {
        let attributes = BTreeMap::from([
            ("price".to_string(), "12.5".to_string()),
            ("store".to_string(), "north".to_string()),
            (SUBJECT.to_string(), "Order".to_string()),
            (
                "AWS.SQS.DataTypes".to_string(),
                r#"{"price":"Number"}"#.to_string(),
            ),
        ]);
        let text = render(&Published {
            region: "eu-west-1",
            topic: "orders",
            id: "m-1",
            body: "hello \"world\"",
            published_at: DateTime::from_timestamp_millis(1_700_000_000_123).expect("time"),
            attributes: &attributes,
        });
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(doc["Type"], "Notification");
        assert_eq!(doc["TopicArn"], "arn:aws:sns:eu-west-1:000000000000:orders");
        assert_eq!(doc["Message"], "hello \"world\"");
        assert_eq!(doc["Subject"], "Order");
        assert_eq!(doc["Timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(
            doc["MessageAttributes"],
            json!({"price": {"Type": "Number", "Value": "12.5"},
                   "store": {"Type": "String", "Value": "north"}})
        );
    }
}
