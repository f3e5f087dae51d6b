//! What the commands print: a table for people, or the API's JSON for scripts.

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;
use sluice_client::{
    ClusterStatus, Endpoint, Message, Queue, RedriveTask, Subscription, Topic, TopicMessage,
};

use crate::args::Format;

/// Prints `value` as JSON, or as the table `table` makes of it.
pub fn print<T: Serialize + ?Sized>(format: Format, value: &T, table: impl FnOnce(&T) -> Table) {
    match format {
        Format::Json => match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the answer as JSON: {e}"),
        },
        Format::Table => println!("{}", table(value)),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.to_vec());
    t
}

fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn body_text(body: &Option<String>, body_base64: &Option<String>) -> String {
    match (body, body_base64) {
        (Some(text), _) => text.clone(),
        (None, Some(b64)) => format!("(base64) {b64}"),
        (None, None) => String::new(),
    }
}

fn attributes_text(attributes: &std::collections::BTreeMap<String, String>) -> String {
    attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn queues(queues: &[Queue]) -> Table {
    let mut t = table(&[
        "NAME",
        "VISIBLE",
        "IN FLIGHT",
        "DELAYED",
        "FIFO",
        "VISIBILITY",
        "DEAD LETTER",
    ]);
    for q in queues {
        t.add_row(vec![
            q.name.clone(),
            q.counts.visible.to_string(),
            q.counts.in_flight.to_string(),
            q.counts.delayed.to_string(),
            if q.attributes.fifo { "yes" } else { "" }.to_string(),
            format!("{}s", q.attributes.visibility_seconds),
            q.attributes
                .dead_letter
                .as_ref()
                .map(|d| format!("{} after {}", d.queue, d.max_receives))
                .unwrap_or_default(),
        ]);
    }
    t
}

pub fn queue(q: &Queue) -> Table {
    let a = &q.attributes;
    let mut t = table(&["ATTRIBUTE", "VALUE"]);
    let rows = [
        ("name", q.name.clone()),
        ("visible", q.counts.visible.to_string()),
        ("in flight", q.counts.in_flight.to_string()),
        ("delayed", q.counts.delayed.to_string()),
        ("visibility", format!("{}s", a.visibility_seconds)),
        ("delay", format!("{}s", a.delay_seconds)),
        ("retention", format!("{}s", a.retention_seconds)),
        ("max message", format!("{} bytes", a.max_message_bytes)),
        ("receive wait", format!("{}s", a.receive_wait_seconds)),
        ("fifo", a.fifo.to_string()),
        ("content dedup", a.content_dedup.to_string()),
        (
            "dead letter",
            a.dead_letter
                .as_ref()
                .map(|d| format!("{} after {} receives", d.queue, d.max_receives))
                .unwrap_or_else(|| "-".into()),
        ),
        ("partitions", a.partitions.to_string()),
        ("created", when(&q.created_at)),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    t
}

pub fn messages(messages: &[Message]) -> Table {
    let mut t = table(&[
        "ID",
        "BODY",
        "RECEIPT",
        "RECEIVES",
        "SENT",
        "GROUP",
        "KEY",
        "ATTRIBUTES",
    ]);
    for m in messages {
        t.add_row(vec![
            m.id.clone(),
            body_text(&m.body, &m.body_base64),
            m.receipt.clone().unwrap_or_default(),
            m.receive_count.to_string(),
            when(&m.sent_at),
            m.group_id.clone().unwrap_or_default(),
            m.key.clone().unwrap_or_default(),
            attributes_text(&m.attributes),
        ]);
    }
    t
}

pub fn redrives(tasks: &[RedriveTask]) -> Table {
    let mut t = table(&[
        "ID", "QUEUE", "STATE", "MOVED", "TOTAL", "FAILED", "STARTED",
    ]);
    for task in tasks {
        t.add_row(vec![
            task.id.clone(),
            task.queue.clone(),
            format!("{:?}", task.state).to_lowercase(),
            task.moved.to_string(),
            task.total.to_string(),
            task.failed.to_string(),
            when(&task.started_at),
        ]);
    }
    t
}

pub fn topics(topics: &[Topic]) -> Table {
    let mut t = table(&["NAME", "MESSAGES", "SUBSCRIPTIONS", "RETENTION", "CREATED"]);
    for topic in topics {
        t.add_row(vec![
            topic.name.clone(),
            topic.messages.to_string(),
            topic.subscriptions.to_string(),
            format!("{}s", topic.attributes.retention_seconds),
            when(&topic.created_at),
        ]);
    }
    t
}

fn endpoint_text(e: &Endpoint) -> String {
    match e {
        Endpoint::Queue(q) => format!("queue {q}"),
        Endpoint::Http { url } => format!("http {url}"),
        Endpoint::Websocket {} => "websocket".into(),
        Endpoint::Email { to } => format!("email {to}"),
        Endpoint::Pull {} => "pull".into(),
    }
}

pub fn subscriptions(subs: &[Subscription]) -> Table {
    let mut t = table(&[
        "NAME",
        "ENDPOINT",
        "DELIVERED",
        "BACKLOG",
        "RETRYING",
        "FAILED",
        "FILTER",
    ]);
    for s in subs {
        let mut filter: Vec<String> = s.filter.tags.iter().map(|t| format!("tag {t}")).collect();
        filter.extend(s.filter.attributes.keys().map(|k| format!("attr {k}")));
        t.add_row(vec![
            s.name.clone(),
            endpoint_text(&s.endpoint),
            s.counts.delivered.to_string(),
            s.counts.backlog.to_string(),
            s.counts.retrying.to_string(),
            s.counts.failed.to_string(),
            filter.join(", "),
        ]);
    }
    t
}

pub fn topic_messages(messages: &[TopicMessage]) -> Table {
    let mut t = table(&[
        "ID",
        "BODY",
        "TAG",
        "KEY",
        "ATTRIBUTES",
        "PUBLISHED",
        "CURSOR",
    ]);
    for m in messages {
        t.add_row(vec![
            m.id.clone(),
            body_text(&m.body, &m.body_base64),
            m.tag.clone().unwrap_or_default(),
            m.key.clone().unwrap_or_default(),
            attributes_text(&m.attributes),
            when(&m.published_at),
            m.cursor.clone(),
        ]);
    }
    t
}

pub fn cluster(status: &ClusterStatus) -> Table {
    let mut t = table(&["MEMBER", "PEER ADDRESS", "ROLE", "LEADER", "LAG"]);
    for m in &status.members {
        t.add_row(vec![
            m.id.to_string(),
            m.peer_address.clone(),
            format!("{:?}", m.role).to_lowercase(),
            if m.leader { "yes" } else { "" }.to_string(),
            m.lag.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
        ]);
    }
    t
}

/// A one-line answer (ids, counts) as a table of one row.
pub fn pairs(rows: &[(&str, String)]) -> Table {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v.clone()]);
    }
    t
}
