//! The MD5 digests SQS answers with, which the SDKs recompute and compare: of the body,
//! and of the message attributes in SQS's binary encoding.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::compat::attributes::AttributeValue;

pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SQS's digest of message attributes: in name order, each as length-prefixed name and
/// data type, a transport byte (1 for string values, 2 for binary), and the
/// length-prefixed value.
pub fn md5_of_attributes(attributes: &BTreeMap<String, AttributeValue>) -> String {
    fn field(hasher: &mut Md5, bytes: &[u8]) {
        hasher.update((bytes.len() as u32).to_be_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Md5::new();
    for (name, value) in attributes {
        field(&mut hasher, name.as_bytes());
        field(&mut hasher, value.data_type.as_bytes());
        hasher.update([if value.is_binary() { 2u8 } else { 1u8 }]);
        field(&mut hasher, &value.value);
    }
    hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_digest_is_plain_md5() {
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn attribute_digest_follows_the_sqs_encoding() {
        // The reference value was computed independently (Python's hashlib over the
        // same framing), sorted by name.
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "n".to_string(),
            AttributeValue {
                data_type: "Number".into(),
                value: b"42".to_vec(),
            },
        );
        attributes.insert(
            "a1".to_string(),
            AttributeValue {
                data_type: "String".into(),
                value: b"hello".to_vec(),
            },
        );
        assert_eq!(
            md5_of_attributes(&attributes),
            "c7bdca4c3840587d453af2c526c3b565"
        );
    }
}
