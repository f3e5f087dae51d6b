//! The naming rule for queues, topics and subscriptions, shared by every side.

/// Longest name allowed.
pub const NAME_MAX_LEN: usize = 255;

/// Checks a queue, topic or subscription name: 1 to 255 letters, digits, `.`, `-`, `_`,
/// starting with a letter or digit. The error says what is wrong, for a person to fix.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > NAME_MAX_LEN {
        return Err(format!(
            "{kind} name is {} characters long; the limit is {NAME_MAX_LEN}",
            name.len()
        ));
    }
    let first = name.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return Err(format!(
            "{kind} name {name:?} must start with a letter or a digit"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "{kind} name {name:?} contains {bad:?}; only letters, digits, '.', '-' and '_' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(validate_name("queue", "orders.v2-eu_west").is_ok());
        assert!(validate_name("queue", "0").is_ok());
        assert!(validate_name("queue", &"a".repeat(255)).is_ok());
    }

    #[test]
    fn refuses_with_a_reason() {
        assert!(validate_name("queue", "").unwrap_err().contains("empty"));
        assert!(validate_name("queue", "-x").unwrap_err().contains("start"));
        assert!(validate_name("queue", "a b").unwrap_err().contains("' '"));
        assert!(validate_name("queue", "ü").unwrap_err().contains("start"));
        assert!(
            validate_name("queue", &"a".repeat(256))
                .unwrap_err()
                .contains("255")
        );
    }
}
