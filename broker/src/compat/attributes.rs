//! Message attributes of the AWS protocols (a data type and a value each) and how they
//! are kept among a message's v1 attributes (text), shared by SQS and SNS so a message
//! published over SNS reaches an SQS consumer with its attributes and types.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::compat::sqs::error::SqsError;

/// Where the data types of non-`String` attributes are kept among a message's v1
/// attributes (SQS reserves names starting with `AWS.`, so none can clash).
const DATA_TYPES: &str = "AWS.SQS.DataTypes";
/// Where an SNS message's `Subject` is kept.
pub const SUBJECT: &str = "AWS.SNS.Subject";
pub const MAX_ATTRIBUTES: usize = 10;

/// A message attribute as SQS carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeValue {
    /// `String`, `Number` or `Binary`, optionally with a custom suffix (`Number.int`).
    pub data_type: String,
    /// The UTF-8 value (String and Number) or the bytes (Binary).
    pub value: Vec<u8>,
}

impl AttributeValue {
    pub fn is_binary(&self) -> bool {
        self.data_type.starts_with("Binary")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeInput {
    pub data_type: String,
    #[serde(default)]
    pub string_value: Option<String>,
    /// Base64 in both protocols.
    #[serde(default)]
    pub binary_value: Option<String>,
}

fn check_attribute_name(name: &str) -> Result<(), SqsError> {
    let lower = name.to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if ok {
        Ok(())
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Message attribute name {name:?} is invalid: 1 to 256 letters, digits, '_', '-' and '.', not starting with AWS. or Amazon."
        )))
    }
}

/// Checks and decodes SQS message attributes.
pub fn attribute_values(
    input: BTreeMap<String, AttributeInput>,
) -> Result<BTreeMap<String, AttributeValue>, SqsError> {
    if input.len() > MAX_ATTRIBUTES {
        return Err(SqsError::invalid_parameter(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            input.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (name, a) in input {
        check_attribute_name(&name)?;
        let base = a.data_type.split('.').next().unwrap_or("");
        let value = match (base, a.string_value, a.binary_value) {
            ("String", Some(s), _) => s.into_bytes(),
            ("Number", Some(s), _) => {
                if s.trim().parse::<f64>().is_err() {
                    return Err(SqsError::invalid_parameter(format!(
                        "Message attribute {name} has the value {s:?}, which is not a number"
                    )));
                }
                s.into_bytes()
            }
            ("Binary", _, Some(b)) => STANDARD.decode(b.trim()).map_err(|_| {
                SqsError::invalid_parameter(format!(
                    "Message attribute {name}'s BinaryValue is not base64"
                ))
            })?,
            ("String" | "Number" | "Binary", _, _) => {
                return Err(SqsError::invalid_parameter(format!(
                    "Message attribute {name} must have a {} value",
                    if base == "Binary" { "binary" } else { "string" }
                )));
            }
            _ => {
                return Err(SqsError::invalid_parameter(format!(
                    "Message attribute {name} has the data type {:?}; it must be String, Number or Binary (optionally with a .suffix)",
                    a.data_type
                )));
            }
        };
        out.insert(
            name,
            AttributeValue {
                data_type: a.data_type,
                value,
            },
        );
    }
    Ok(out)
}

/// SQS attributes as v1 attributes: values as text (binary in base64), with the data
/// types that are not plain `String` kept under [`DATA_TYPES`].
pub fn to_v1_attributes(attributes: &BTreeMap<String, AttributeValue>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut types = Map::new();
    for (name, a) in attributes {
        let text = if a.is_binary() {
            STANDARD.encode(&a.value)
        } else {
            String::from_utf8_lossy(&a.value).into_owned()
        };
        out.insert(name.clone(), text);
        if a.data_type != "String" {
            types.insert(name.clone(), Value::String(a.data_type.clone()));
        }
    }
    if !types.is_empty() {
        out.insert(DATA_TYPES.to_string(), Value::Object(types).to_string());
    }
    out
}

/// A stored message's attributes in SQS's form (v1 attributes are `String`s).
pub fn from_v1_attributes(
    attributes: &BTreeMap<String, String>,
) -> BTreeMap<String, AttributeValue> {
    let types: Map<String, Value> = attributes
        .get(DATA_TYPES)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    attributes
        .iter()
        .filter(|(name, _)| !name.starts_with("AWS."))
        .map(|(name, value)| {
            let data_type = types
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("String")
                .to_string();
            let value = if data_type.starts_with("Binary") {
                STANDARD
                    .decode(value)
                    .unwrap_or_else(|_| value.as_bytes().to_vec())
            } else {
                value.as_bytes().to_vec()
            };
            (name.clone(), AttributeValue { data_type, value })
        })
        .collect()
}
