//! SNS filter policies (`{"store": ["north"], "price": [{"numeric": [">=", 10]}]}`) and
//! Sluice subscription filters, which were made to the same shape: each key lists the
//! conditions one of which its attribute must meet.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_client::{AttributeCondition, NumericTerm, SubscriptionFilter};

use super::error::SnsError;

fn refuse(message: impl Into<String>) -> SnsError {
    SnsError::invalid_parameter(format!(
        "Invalid parameter: FilterPolicy: {}",
        message.into()
    ))
}

/// Reads a `FilterPolicy` attribute; an empty text or `{}` means no filter.
pub fn parse(text: &str) -> Result<SubscriptionFilter, SnsError> {
    if text.trim().is_empty() {
        return Ok(SubscriptionFilter::default());
    }
    let policy: Value =
        serde_json::from_str(text).map_err(|e| refuse(format!("not JSON ({e})")))?;
    let Value::Object(keys) = policy else {
        return Err(refuse("the policy must be a JSON object"));
    };
    let mut attributes = BTreeMap::new();
    for (key, conditions) in keys {
        if key.starts_with('$') {
            return Err(refuse(format!(
                "{key} is not supported; Sluice filters are one AND of keys, each an OR of its conditions"
            )));
        }
        let Value::Array(conditions) = conditions else {
            return Err(refuse(format!(
                "the value of {key:?} must be an array of conditions (nested policies on the message body are not supported)"
            )));
        };
        if conditions.is_empty() {
            return Err(refuse(format!("{key:?} lists no condition")));
        }
        let parsed = conditions
            .iter()
            .map(|c| condition(&key, c))
            .collect::<Result<Vec<_>, _>>()?;
        attributes.insert(key, parsed);
    }
    Ok(SubscriptionFilter {
        tags: Vec::new(),
        attributes,
    })
}

fn number(key: &str, value: &Value) -> Result<f64, SnsError> {
    value
        .as_f64()
        .ok_or_else(|| refuse(format!("{key:?}: {value} is not a number")))
}

fn text_or_number(key: &str, value: &Value) -> Result<String, SnsError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(refuse(format!(
            "{key:?}: {other} must be a string or a number"
        ))),
    }
}

fn condition(key: &str, c: &Value) -> Result<AttributeCondition, SnsError> {
    match c {
        Value::String(s) => Ok(AttributeCondition::Exact(s.clone())),
        Value::Number(_) => Ok(AttributeCondition::Numeric {
            numeric: vec![
                NumericTerm::Operator("=".into()),
                NumericTerm::Value(number(key, c)?),
            ],
        }),
        Value::Object(o) if o.len() == 1 => {
            let (op, arg) = o.iter().next().ok_or_else(|| refuse("empty condition"))?;
            match (op.as_str(), arg) {
                ("prefix", Value::String(p)) => {
                    Ok(AttributeCondition::Prefix { prefix: p.clone() })
                }
                ("exists", Value::Bool(e)) => Ok(AttributeCondition::Exists { exists: *e }),
                ("numeric", Value::Array(terms)) => {
                    let numeric = terms
                        .iter()
                        .map(|t| match t {
                            Value::String(op) => Ok(NumericTerm::Operator(op.clone())),
                            other => number(key, other).map(NumericTerm::Value),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(AttributeCondition::Numeric { numeric })
                }
                ("anything-but", Value::Array(values)) => Ok(AttributeCondition::AnythingBut {
                    anything_but: values
                        .iter()
                        .map(|v| text_or_number(key, v))
                        .collect::<Result<_, _>>()?,
                }),
                ("anything-but", v @ (Value::String(_) | Value::Number(_))) => {
                    Ok(AttributeCondition::AnythingBut {
                        anything_but: vec![text_or_number(key, v)?],
                    })
                }
                (op, arg) => Err(refuse(format!(
                    "{key:?}: {{\"{op}\": {arg}}} is not supported; Sluice has exact values, numbers, prefix, numeric, exists and anything-but (of values)"
                ))),
            }
        }
        other => Err(refuse(format!(
            "{key:?}: {other} is not a condition Sluice supports (a string, a number, or one of prefix, numeric, exists, anything-but)"
        ))),
    }
}

/// The policy text of a filter, as `GetSubscriptionAttributes` shows it; `None` when
/// the subscription filters on no attribute.
pub fn render(filter: &SubscriptionFilter) -> Option<String> {
    if filter.attributes.is_empty() {
        return None;
    }
    serde_json::to_string(&filter.attributes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_condition_reads_as_the_subscription_filter() {
        let filter = parse(
            r#"{"store": ["north", "south"], "price": [{"numeric": [">=", 10, "<", 20]}],
                "kind": [{"prefix": "order-"}], "vip": [{"exists": true}],
                "size": [3], "region": [{"anything-but": ["eu", 7]}]}"#,
        )
        .expect("parses");
        assert_eq!(
            filter.attributes["store"],
            vec![
                AttributeCondition::Exact("north".into()),
                AttributeCondition::Exact("south".into())
            ]
        );
        assert_eq!(
            filter.attributes["size"],
            vec![AttributeCondition::Numeric {
                numeric: vec![NumericTerm::Operator("=".into()), NumericTerm::Value(3.0)]
            }]
        );
        assert_eq!(
            filter.attributes["region"],
            vec![AttributeCondition::AnythingBut {
                anything_but: vec!["eu".into(), "7".into()]
            }]
        );
        let text = render(&filter).expect("has attributes");
        assert_eq!(parse(&text).expect("round trip"), filter);
    }

    #[test]
    fn what_sluice_cannot_filter_is_refused_by_name() {
        for (policy, named) in [
            (r#"{"$or": []}"#, "$or"),
            (r#"{"a": {"b": ["c"]}}"#, "nested"),
            (r#"{"a": [{"suffix": "x"}]}"#, "suffix"),
            (r#"{"a": [true]}"#, "true"),
            (r#"["a"]"#, "object"),
            ("{", "not JSON"),
        ] {
            let e = parse(policy).expect_err(policy);
            assert_eq!(e.code, "InvalidParameter");
            assert!(e.message.contains(named), "{policy}: {}", e.message);
        }
        assert_eq!(parse("").expect("empty"), SubscriptionFilter::default());
        assert_eq!(render(&SubscriptionFilter::default()), None);
    }
}
