//! Which messages a subscription gets: by tag, and by attribute conditions as in SNS
//! filter policies (every key must match; any one of a key's conditions will do).

use super::config::{Comparison, Condition, Filter};
use crate::queue::message::NewMessage;

impl Filter {
    /// True when the subscription takes this message.
    pub fn matches(&self, msg: &NewMessage) -> bool {
        if !self.tags.is_empty() {
            match &msg.tag {
                Some(tag) if self.tags.iter().any(|t| t == tag) => {}
                _ => return false,
            }
        }
        self.attributes.iter().all(|(key, conditions)| {
            let value = msg
                .attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str());
            conditions.iter().any(|c| c.holds(value))
        })
    }
}

impl Condition {
    fn holds(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Condition::Exists(wanted), v) => v.is_some() == *wanted,
            (_, None) => false,
            (Condition::Exact(x), Some(v)) => x == v,
            (Condition::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
            (Condition::AnythingBut(xs), Some(v)) => xs.iter().all(|x| x != v),
            (Condition::Numeric(terms), Some(v)) => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => terms.iter().all(|(op, bound)| match op {
                    Comparison::Eq => n == *bound,
                    Comparison::Lt => n < *bound,
                    Comparison::Le => n <= *bound,
                    Comparison::Gt => n > *bound,
                    Comparison::Ge => n >= *bound,
                }),
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;

    fn msg(tag: Option<&str>, attrs: &[(&str, &str)]) -> NewMessage {
        NewMessage {
            body: Bytes::from_static(b"x"),
            text: true,
            visible_at_ms: None,
            priority: 8,
            group: None,
            dedup: None,
            key: None,
            tag: tag.map(String::from),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn filter(tags: &[&str], attrs: Vec<(&str, Vec<Condition>)>) -> Filter {
        Filter {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            attributes: attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn an_empty_filter_takes_everything() {
        assert!(Filter::default().matches(&msg(None, &[])));
    }

    #[test]
    fn tags() {
        let f = filter(&["order", "refund"], vec![]);
        assert!(f.matches(&msg(Some("order"), &[])));
        assert!(!f.matches(&msg(Some("audit"), &[])));
        assert!(!f.matches(&msg(None, &[])));
    }

    #[test]
    fn every_condition_kind() {
        let f = filter(
            &[],
            vec![
                (
                    "color",
                    vec![
                        Condition::Exact("red".into()),
                        Condition::Prefix("bl".into()),
                    ],
                ),
                (
                    "price",
                    vec![Condition::Numeric(vec![
                        (Comparison::Ge, 10.0),
                        (Comparison::Lt, 20.0),
                    ])],
                ),
                ("vip", vec![Condition::Exists(true)]),
                ("region", vec![Condition::AnythingBut(vec!["cn".into()])]),
            ],
        );
        let ok = [
            ("color", "red"),
            ("price", "10"),
            ("vip", "yes"),
            ("region", "eu"),
        ];
        assert!(f.matches(&msg(None, &ok)));
        assert!(f.matches(&msg(
            None,
            &[
                ("color", "blue"),
                ("price", "19.5"),
                ("vip", ""),
                ("region", "us")
            ]
        )));
        assert!(!f.matches(&msg(
            None,
            &[
                ("color", "green"),
                ("price", "10"),
                ("vip", "y"),
                ("region", "eu")
            ]
        )));
        assert!(!f.matches(&msg(
            None,
            &[
                ("color", "red"),
                ("price", "20"),
                ("vip", "y"),
                ("region", "eu")
            ]
        )));
        assert!(!f.matches(&msg(
            None,
            &[
                ("color", "red"),
                ("price", "cheap"),
                ("vip", "y"),
                ("region", "eu")
            ]
        )));
        assert!(!f.matches(&msg(
            None,
            &[("color", "red"), ("price", "12"), ("region", "eu")]
        )));
        assert!(!f.matches(&msg(
            None,
            &[
                ("color", "red"),
                ("price", "12"),
                ("vip", "y"),
                ("region", "cn")
            ]
        )));
        let absent = filter(&[], vec![("debug", vec![Condition::Exists(false)])]);
        assert!(absent.matches(&msg(None, &[])));
        assert!(!absent.matches(&msg(None, &[("debug", "1")])));
    }
}
