//! RFC 3339 timestamps on the wire, written and read by hand for the one shape the broker
//! writes (`2026-11-25T13:35:38.885Z`): every received message carries two, and chrono's
//! general formatter and parser were a measurable share of receive's CPU. Anything else
//! RFC 3339 allows is read with chrono.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format(t: &DateTime<Utc>) -> String {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }
    let mut out = [0u8; 24];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    put(20, t.timestamp_subsec_millis().min(999), 3);
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b'T';
    out[13] = b':';
    out[16] = b':';
    out[19] = b'.';
    out[23] = b'Z';
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the broker's shape quickly, anything else through chrono.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let fixed = b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z';
    if fixed {
        let num = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
            })
        };
        let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
        let time =
            date.and_hms_milli_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?)?;
        return Some(time.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    parse(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 timestamp")))
}

/// The same for optional fields.
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<std::borrow::Cow<str>>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse(&text).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not an RFC 3339 timestamp"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_agrees_with_chrono() {
        for ms in [0i64, 1, 999, 1_764_077_738_885, 253_402_300_799_999] {
            let t = DateTime::from_timestamp_millis(ms).expect("valid");
            let text = format(&t);
            assert_eq!(text, t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            assert_eq!(parse(&text), Some(t));
        }
        let offset = parse("2026-11-25T14:35:38.5+01:00").expect("chrono's path");
        assert_eq!(format(&offset), "2026-11-25T13:35:38.500Z");
        assert_eq!(parse("2026-13-25T13:35:38.885Z"), None);
        assert_eq!(parse("yesterday"), None);
    }
}
