//! The query protocol: `Action=...` form parameters in, XML out. Parameters are turned
//! into the JSON protocol's input shape (`Attribute.1.Name` and `Attribute.1.Value`
//! become `"Attributes": {name: value}`), and the JSON protocol's output shape is written
//! as the XML older SDKs parse, so every action is written once.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::SqsError;
use crate::xml::escape;

/// The XML namespace of SQS answers.
const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// How a flattened query member becomes a JSON member.
enum Member {
    /// `Name.N.<key>` / `Name.N.<value>` entries: a map.
    Map {
        json: &'static str,
        key: &'static str,
        value: &'static str,
    },
    /// `Name.N`: a list.
    List { json: &'static str },
}

fn member(query_name: &str) -> Option<Member> {
    use Member::*;
    Some(match query_name {
        "Attribute" => Map {
            json: "Attributes",
            key: "Name",
            value: "Value",
        },
        "MessageAttribute" => Map {
            json: "MessageAttributes",
            key: "Name",
            value: "Value",
        },
        "MessageSystemAttribute" => Map {
            json: "MessageSystemAttributes",
            key: "Name",
            value: "Value",
        },
        "Tag" => Map {
            json: "Tags",
            key: "Key",
            value: "Value",
        },
        "AttributeName" => List {
            json: "AttributeNames",
        },
        "MessageAttributeName" => List {
            json: "MessageAttributeNames",
        },
        "MessageSystemAttributeName" => List {
            json: "MessageSystemAttributeNames",
        },
        "TagKey" => List { json: "TagKeys" },
        "SendMessageBatchRequestEntry"
        | "DeleteMessageBatchRequestEntry"
        | "ChangeMessageVisibilityBatchRequestEntry" => List { json: "Entries" },
        _ => return None,
    })
}

/// The empty value of a list or map member, by its JSON name.
fn empty_collection(json_name: &str) -> Option<Value> {
    match json_name {
        "Attributes" | "MessageAttributes" | "MessageSystemAttributes" | "Tags" => {
            Some(Value::Object(Map::new()))
        }
        "AttributeNames"
        | "MessageAttributeNames"
        | "MessageSystemAttributeNames"
        | "TagKeys"
        | "Entries" => Some(Value::Array(Vec::new())),
        _ => None,
    }
}

/// A parameter tree: `A.1.B=v` is `A -> 1 -> B -> v`.
#[derive(Debug, Default)]
struct Tree {
    value: Option<String>,
    children: BTreeMap<String, Tree>,
}

impl Tree {
    fn insert(&mut self, path: &[&str], value: String) {
        match path.split_first() {
            None => self.value = Some(value),
            Some((head, rest)) => self
                .children
                .entry((*head).to_string())
                .or_default()
                .insert(rest, value),
        }
    }

    /// Children with numeric names, in index order.
    fn indexed(&self) -> Result<Vec<&Tree>, SqsError> {
        let mut items = Vec::with_capacity(self.children.len());
        for (index, child) in &self.children {
            let n: u32 = index.parse().map_err(|_| {
                SqsError::malformed(format!("expected a list index, found {index:?}"))
            })?;
            items.push((n, child));
        }
        items.sort_by_key(|(n, _)| *n);
        Ok(items.into_iter().map(|(_, c)| c).collect())
    }

    fn to_json(&self) -> Result<Value, SqsError> {
        if self.children.is_empty() {
            return Ok(Value::String(self.value.clone().unwrap_or_default()));
        }
        let mut object = Map::new();
        for (name, child) in &self.children {
            match member(name) {
                Some(Member::Map { json, key, value }) => {
                    let mut map = Map::new();
                    for entry in child.indexed()? {
                        let k = entry
                            .children
                            .get(key)
                            .and_then(|k| k.value.clone())
                            .ok_or_else(|| {
                                SqsError::missing_parameter(&format!("{name}.N.{key}"))
                            })?;
                        let v = match entry.children.get(value) {
                            Some(v) => v.to_json()?,
                            None => Value::Null,
                        };
                        map.insert(k, v);
                    }
                    object.insert(json.to_string(), Value::Object(map));
                }
                Some(Member::List { json }) => {
                    let items = child
                        .indexed()?
                        .into_iter()
                        .map(Tree::to_json)
                        .collect::<Result<Vec<_>, _>>()?;
                    object.insert(json.to_string(), Value::Array(items));
                }
                // An empty list or map is sent as `Entries=` under its JSON name.
                None if child.children.is_empty()
                    && child.value.as_deref().is_none_or(str::is_empty)
                    && empty_collection(name).is_some() =>
                {
                    object.insert(name.clone(), empty_collection(name).unwrap_or(Value::Null));
                }
                None => {
                    object.insert(name.clone(), child.to_json()?);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// The action and its input in the JSON protocol's shape.
pub fn parse(params: &[(String, String)]) -> Result<(String, Value), SqsError> {
    let mut action = None;
    let mut tree = Tree::default();
    for (key, value) in params {
        match key.as_str() {
            "Action" => action = Some(value.clone()),
            "Version" => {}
            _ => {
                let path: Vec<&str> = key.split('.').collect();
                tree.insert(&path, value.clone());
            }
        }
    }
    let action = action.ok_or_else(|| SqsError::missing_parameter("Action"))?;
    let input = if tree.children.is_empty() {
        Value::Object(Map::new())
    } else {
        tree.to_json()?
    };
    Ok((action, input))
}

/// The element that repeats for each item of an output list (lists are flattened).
fn list_item(action: &str, json_name: &str) -> String {
    match json_name {
        "QueueUrls" | "queueUrls" => "QueueUrl".into(),
        "Messages" => "Message".into(),
        "Successful" => format!("{action}ResultEntry"),
        "Failed" => "BatchResultErrorEntry".into(),
        "Results" => format!("{action}ResultEntry"),
        other => other.into(),
    }
}

/// The element of each entry of an output map, and the names of its key and value.
fn map_entry(json_name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match json_name {
        "Attributes" => Some(("Attribute", "Name", "Value")),
        "MessageAttributes" => Some(("MessageAttribute", "Name", "Value")),
        "Tags" => Some(("Tag", "Key", "Value")),
        _ => None,
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => escape(s),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Writes the members of a JSON object as XML elements.
fn members(action: &str, object: &Map<String, Value>, out: &mut String) {
    for (name, value) in object {
        element(action, name, value, out);
    }
}

fn element(action: &str, name: &str, value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            let item = list_item(action, name);
            for v in items {
                element(action, &item, v, out);
            }
        }
        Value::Object(map) => {
            if let Some((entry, key, val)) = map_entry(name) {
                for (k, v) in map {
                    out.push_str(&format!("<{entry}><{key}>{}</{key}>", escape(k)));
                    element(action, val, v, out);
                    out.push_str(&format!("</{entry}>"));
                }
            } else {
                out.push_str(&format!("<{name}>"));
                members(action, map, out);
                out.push_str(&format!("</{name}>"));
            }
        }
        other => out.push_str(&format!("<{name}>{}</{name}>", scalar(other))),
    }
}

/// The XML answer of an action whose JSON protocol answer is `output`.
pub fn render(action: &str, output: &Value, request_id: &str) -> String {
    let mut out = format!(r#"<?xml version="1.0"?><{action}Response xmlns="{XMLNS}">"#);
    if let Value::Object(map) = output {
        out.push_str(&format!("<{action}Result>"));
        members(action, map, &mut out);
        out.push_str(&format!("</{action}Result>"));
    }
    out.push_str(&format!(
        "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    ));
    out
}

/// The XML answer of a failed action.
pub fn render_error(error: &SqsError, request_id: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message><Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"#,
        error.fault(),
        error.query_code,
        escape(&error.message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flattened_parameters_become_the_json_shape() {
        let (action, input) = parse(&params(&[
            ("Action", "SendMessageBatch"),
            ("QueueUrl", "http://h/000000000000/q"),
            ("SendMessageBatchRequestEntry.2.Id", "b"),
            ("SendMessageBatchRequestEntry.2.MessageBody", "two"),
            ("SendMessageBatchRequestEntry.1.Id", "a"),
            ("SendMessageBatchRequestEntry.1.MessageBody", "one"),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Name",
                "n",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType",
                "Number",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue",
                "7",
            ),
            ("Version", "2012-11-05"),
        ]))
        .expect("parses");
        assert_eq!(action, "SendMessageBatch");
        assert_eq!(
            input,
            json!({
                "QueueUrl": "http://h/000000000000/q",
                "Entries": [
                    {"Id": "a", "MessageBody": "one",
                     "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "7"}}},
                    {"Id": "b", "MessageBody": "two"}
                ]
            })
        );
    }

    #[test]
    fn maps_and_lists_render_flattened() {
        let xml = render(
            "ReceiveMessage",
            &json!({"Messages": [{"MessageId": "m", "Body": "a<b",
                "Attributes": {"SentTimestamp": "1"}}]}),
            "r",
        );
        assert!(xml.contains("<ReceiveMessageResult><Message><Attribute>"));
        assert!(xml.contains("<Body>a&lt;b</Body>"));
        assert!(xml.contains("<Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>"));
    }

    #[test]
    fn a_missing_action_is_refused() {
        let err = parse(&params(&[("QueueName", "q")])).unwrap_err();
        assert_eq!(err.query_code, "MissingParameter");
    }
}
