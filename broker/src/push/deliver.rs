//! One push delivery: the body in the subscription's format, signed, POSTed to a URL or
//! mailed through the broker's SMTP server.

use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sha2::Sha256;
use sluice_client::{Notification, TopicMessage};

use crate::compat::attributes::SUBJECT;
use crate::compat::sns::notification::{self, Published};
use crate::topic::config::Format;
use axum::http::{HeaderName, HeaderValue};

use super::client::PushClient;

/// Header with the delivery's signature: `t=<ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-sluice-signature";
/// How long an endpoint has to answer before the attempt counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SMTP server email subscriptions are sent through.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("--smtp-server {0:?} is not host:port")]
    Server(String),
    #[error("--smtp-from {0:?} is not an email address: {1}")]
    From(String, lettre::address::AddressError),
}

impl Mailer {
    /// A mailer for plain SMTP on `host:port` (in-cluster relays; no TLS).
    pub fn new(server: &str, from: &str) -> Result<Self, MailerError> {
        let (host, port) = server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| MailerError::Server(server.to_string()))?;
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| MailerError::From(from.to_string(), e))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(DELIVERY_TIMEOUT))
            .build();
        Ok(Self { transport, from })
    }
}

/// The body and content type of an HTTP push in `format`.
pub fn http_body(
    format: Format,
    region: &str,
    topic: &str,
    subscription: &str,
    message: &TopicMessage,
    raw_body: &[u8],
) -> (Vec<u8>, &'static str) {
    match format {
        Format::Json => {
            let notification = Notification {
                topic: topic.to_string(),
                subscription: subscription.to_string(),
                message: message.clone(),
            };
            let body = serde_json::to_vec(&notification).unwrap_or_default();
            (body, "application/json")
        }
        Format::Xml => (
            xml_notification(topic, subscription, message).into_bytes(),
            "text/xml;charset=utf-8",
        ),
        Format::Simplified => (raw_body.to_vec(), "application/octet-stream"),
        Format::Sns => (
            sns_notification(region, topic, message).into_bytes(),
            "text/plain; charset=UTF-8",
        ),
    }
}

fn sns_notification(region: &str, topic: &str, message: &TopicMessage) -> String {
    notification::render(&Published {
        region,
        topic,
        id: &message.id,
        body: message
            .body
            .as_deref()
            .or(message.body_base64.as_deref())
            .unwrap_or(""),
        published_at: message.published_at,
        attributes: &message.attributes,
    })
}

/// An MNS-style `<Notification>` document.
pub fn xml_notification(topic: &str, subscription: &str, message: &TopicMessage) -> String {
    let body = message
        .body
        .as_deref()
        .or(message.body_base64.as_deref())
        .unwrap_or("");
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Notification xmlns=\"http://mns.aliyuncs.com/doc/v1/\">",
    );
    let mut field = |name: &str, value: &str| {
        xml.push_str(&format!("<{name}>{}</{name}>", crate::xml::escape(value)));
    };
    field("TopicName", topic);
    field("SubscriptionName", subscription);
    field("MessageId", &message.id);
    if let Some(tag) = &message.tag {
        field("MessageTag", tag);
    }
    field("Message", body);
    field(
        "PublishTime",
        &message.published_at.timestamp_millis().to_string(),
    );
    xml.push_str("</Notification>");
    xml
}

/// The signature header's value for `body` sent at `time_ms`.
pub fn signature(secret: &str, time_ms: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(time_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("t={time_ms},v1={}", hex(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one attempt came to.
pub type Attempt = Result<(), String>;

/// POSTs one delivery; a 2xx answer within the timeout is a delivery.
#[allow(clippy::too_many_arguments)]
pub async fn post(
    client: &PushClient,
    url: &str,
    secret: &str,
    format: Format,
    region: &str,
    topic: &str,
    subscription: &str,
    message: &TopicMessage,
    raw_body: &[u8],
    attempt: u32,
) -> Attempt {
    let (body, content_type) = http_body(format, region, topic, subscription, message, raw_body);
    let signed = signature(secret, crate::raft::now_ms(), &body);
    let mut headers: Vec<(&str, String)> = vec![
        ("content-type", content_type.to_string()),
        (SIGNATURE_HEADER, signed),
        ("x-sluice-topic", topic.to_string()),
        ("x-sluice-subscription", subscription.to_string()),
        ("x-sluice-message-id", message.id.clone()),
        ("x-sluice-attempt", attempt.to_string()),
    ];
    if format == Format::Sns {
        // What SNS HTTP endpoints dispatch on.
        headers.extend([
            ("x-amz-sns-message-type", "Notification".to_string()),
            ("x-amz-sns-message-id", message.id.clone()),
            (
                "x-amz-sns-topic-arn",
                notification::topic_arn(region, topic),
            ),
            (
                "x-amz-sns-subscription-arn",
                notification::subscription_arn(region, topic, subscription),
            ),
        ]);
    }
    let headers = headers
        .into_iter()
        .map(|(name, value)| {
            Ok((
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).map_err(|e| format!("header {name}: {e}"))?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let status = client.post(url, headers, body, DELIVERY_TIMEOUT).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// Mails one delivery: the subject is the SNS subject it was published with, or names
/// the topic and the tag (or the message id); the text is the body (base64 when it is
/// not text), or the SNS notification in the SNS format (`email-json`).
pub async fn mail(
    mailer: &Mailer,
    to: &str,
    format: Format,
    region: &str,
    topic: &str,
    message: &TopicMessage,
) -> Attempt {
    let to = to.parse::<Mailbox>().map_err(|e| e.to_string())?;
    let subject = match message.attributes.get(SUBJECT) {
        Some(subject) => subject.clone(),
        None => format!(
            "[{topic}] {}",
            message.tag.as_deref().unwrap_or(&message.id)
        ),
    };
    let text = if format == Format::Sns {
        sns_notification(region, topic, message)
    } else {
        message
            .body
            .clone()
            .or_else(|| message.body_base64.clone())
            .unwrap_or_default()
    };
    let email = lettre::Message::builder()
        .from(mailer.from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| e.to_string())?;
    mailer
        .transport
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_time_dot_body() {
        // RFC 4231 style check: a known key and message give a known digest.
        let expected = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("key");
            mac.update(b"1700000000000.hello");
            hex(&mac.finalize().into_bytes())
        };
        assert_eq!(
            signature("key", 1_700_000_000_000, b"hello"),
            format!("t=1700000000000,v1={expected}")
        );
        assert_ne!(
            signature("other", 1_700_000_000_000, b"hello"),
            signature("key", 1_700_000_000_000, b"hello")
        );
    }

    #[test]
    fn xml_escapes_the_body() {
        let message = TopicMessage {
            id: "m1".into(),
            body: Some("a<b & \"c\"".into()),
            body_base64: None,
            tag: Some("t".into()),
            key: None,
            attributes: Default::default(),
            published_at: chrono::DateTime::from_timestamp_millis(5).expect("time"),
            cursor: "c".into(),
        };
        let xml = xml_notification("orders", "audit", &message);
        assert!(xml.contains("<Message>a&lt;b &amp; &quot;c&quot;</Message>"));
        assert!(xml.contains("<MessageTag>t</MessageTag>"));
        assert!(xml.contains("<PublishTime>5</PublishTime>"));
    }

    #[test]
    fn mailer_refuses_bad_settings() {
        assert!(matches!(
            Mailer::new("nohost", "a@b"),
            Err(MailerError::Server(_))
        ));
        assert!(matches!(
            Mailer::new("localhost:25", "not an address"),
            Err(MailerError::From(..))
        ));
    }
}
