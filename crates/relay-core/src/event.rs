//! The inbound event schema (CONTRACT §3). Only the envelope is checked: `eventId`, `type`,
//! `timestamp` and an optional `deviceId`. Every other field is kept in the raw bytes and
//! forwarded untouched, so unknown event types and new WAPing fields pass through.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const MAX_EVENT_ID_LEN: usize = 256;
pub const MAX_TYPE_LEN: usize = 128;
pub const MAX_DEVICE_ID_LEN: usize = 256;

/// The envelope fields the relay indexes, filters and dedupes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub wap_event_id: String,
    pub event_type: String,
    pub timestamp: OffsetDateTime,
    pub device_id: Option<String>,
}

/// What a verified inbound body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// An event to store and deliver.
    Event(Envelope),
    /// `{"type":"url_verification","challenge":C}`: answered, never stored.
    UrlVerification { challenge: String },
}

/// Why a body is not an acceptable event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{field}: {problem}")]
    Invalid { field: &'static str, problem: String },
}

impl SchemaError {
    fn field(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid { field, problem: problem.into() }
    }
}

/// Parses and validates a raw body. The bytes are not kept here: the caller stores them as
/// received.
pub fn parse_inbound(body: &[u8]) -> Result<Inbound, SchemaError> {
    let value = parse_strict(body)?;
    let Value::Object(object) = value else {
        return Err(SchemaError::field("(root)", "must be a JSON object"));
    };
    if object.get("type").and_then(Value::as_str) == Some("url_verification")
        && let Some(challenge) = object.get("challenge").and_then(Value::as_str)
    {
        return Ok(Inbound::UrlVerification { challenge: challenge.to_owned() });
    }
    validate_envelope(&object).map(Inbound::Event)
}

/// Parses JSON refusing an object that holds the same key twice (at any depth): parsers differ on
/// which value they keep, so a destination could read what the relay never validated.
///
/// A number beyond what a float holds (`1e400`) is valid JSON, and the relay forwards bytes: such
/// a body is parsed again with those numbers read as `null` (none of the fields the relay reads
/// is a number).
fn parse_strict(body: &[u8]) -> Result<Value, SchemaError> {
    use serde::de::DeserializeSeed;
    let parse = |seed: Strict| {
        let mut de = serde_json::Deserializer::from_slice(body);
        seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v))
    };
    let value = match parse(Strict { lenient: false }) {
        Err(e) if e.to_string().starts_with("number out of range") => parse(Strict { lenient: true }),
        other => other,
    };
    value.map_err(|e| match e.classify() {
        // The only data error a JSON value can raise is ours.
        serde_json::error::Category::Data => SchemaError::field("body", e.to_string()),
        _ => SchemaError::InvalidJson(e.to_string()),
    })
}

/// Builds a [`Value`], failing on a duplicate object key; `lenient` reads each member through its
/// raw text first, so a number out of a float's range becomes `null` instead of an error.
#[derive(Clone, Copy)]
struct Strict {
    lenient: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Strict {
    /// A member read as raw text (numbers are skipped over, not converted), then parsed.
    fn member<E: serde::de::Error>(self, raw: &serde_json::value::RawValue) -> Result<Value, E> {
        use serde::de::DeserializeSeed;
        let text = raw.get();
        if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Ok(serde_json::from_str(text).unwrap_or(Value::Null));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        self.deserialize(&mut de).map_err(E::custom)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        if self.lenient {
            while let Some(raw) = seq.next_element::<&serde_json::value::RawValue>()? {
                items.push(self.member(raw)?);
            }
        } else {
            while let Some(item) = seq.next_element_seed(self)? {
                items.push(item);
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if self.lenient {
                self.member(map.next_value::<&serde_json::value::RawValue>()?)?
            } else {
                map.next_value_seed(self)?
            };
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("holds the key `{key}` twice")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

fn validate_envelope(object: &Map<String, Value>) -> Result<Envelope, SchemaError> {
    let wap_event_id = required_str(object, "eventId", MAX_EVENT_ID_LEN)?;
    let event_type = required_str(object, "type", MAX_TYPE_LEN)?;
    if !event_type.bytes().all(is_type_byte) {
        return Err(SchemaError::field("type", "may contain only A-Z a-z 0-9 _ . : -"));
    }
    let raw_timestamp = match object.get("timestamp") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(SchemaError::field("timestamp", "must be a string")),
        None => return Err(SchemaError::field("timestamp", "is required")),
    };
    let timestamp = OffsetDateTime::parse(raw_timestamp, &Rfc3339)
        .map_err(|_| SchemaError::field("timestamp", "must be an RFC 3339 date-time"))?;
    // Stored and shown in UTC: its offset must not carry it outside the years 0000 to 9999.
    let timestamp = timestamp
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| SchemaError::field("timestamp", "must fall within the years 0000 to 9999 in UTC"))?;
    let device_id = match object.get("deviceId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.contains('\0') => {
            return Err(SchemaError::field("deviceId", "must not contain NUL"));
        }
        Some(Value::String(s)) if s.chars().count() <= MAX_DEVICE_ID_LEN => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(SchemaError::field(
                "deviceId",
                format!("must be at most {MAX_DEVICE_ID_LEN} characters"),
            ));
        }
        Some(_) => return Err(SchemaError::field("deviceId", "must be a string")),
    };
    Ok(Envelope { wap_event_id, event_type, timestamp, device_id })
}

fn required_str(
    object: &Map<String, Value>,
    field: &'static str,
    max_chars: usize,
) -> Result<String, SchemaError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(SchemaError::field(field, "is required")),
        Some(Value::String(s)) if s.is_empty() => Err(SchemaError::field(field, "must not be empty")),
        Some(Value::String(s)) if s.chars().count() > max_chars => {
            Err(SchemaError::field(field, format!("must be at most {max_chars} characters")))
        }
        Some(Value::String(s)) if s.contains('\0') => Err(SchemaError::field(field, "must not contain NUL")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(SchemaError::field(field, "must be a string")),
    }
}

fn is_type_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"eventId":"evt_123","type":"message.received","timestamp":"2026-04-03T12:00:00Z","deviceId":"dev_123","message":{"id":"m","from":"+1","body":"Hi"}}"#;

    fn field_of(body: &str) -> &'static str {
        match parse_inbound(body.as_bytes()) {
            Err(SchemaError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_the_contract_example() {
        let Inbound::Event(e) = parse_inbound(GOOD.as_bytes()).unwrap() else { panic!() };
        assert_eq!(e.wap_event_id, "evt_123");
        assert_eq!(e.event_type, "message.received");
        assert_eq!(e.device_id.as_deref(), Some("dev_123"));
        assert_eq!(e.timestamp.unix_timestamp(), 1_775_217_600);
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(field_of(r#"{"type":"a","timestamp":"2026-04-03T12:00:00Z"}"#), "eventId");
        assert_eq!(field_of(r#"{"eventId":"","type":"a","timestamp":"2026-04-03T12:00:00Z"}"#), "eventId");
        assert_eq!(field_of(r#"{"eventId":1,"type":"a","timestamp":"2026-04-03T12:00:00Z"}"#), "eventId");
        assert_eq!(field_of(r#"{"eventId":"e","type":"a b","timestamp":"2026-04-03T12:00:00Z"}"#), "type");
        assert_eq!(field_of(r#"{"eventId":"e","timestamp":"2026-04-03T12:00:00Z"}"#), "type");
        assert_eq!(field_of(r#"{"eventId":"e","type":"a","timestamp":"yesterday"}"#), "timestamp");
        assert_eq!(field_of(r#"{"eventId":"e","type":"a"}"#), "timestamp");
        assert_eq!(
            field_of(r#"{"eventId":"e","type":"a","timestamp":"2026-04-03T12:00:00Z","deviceId":5}"#),
            "deviceId"
        );
        assert_eq!(field_of("[1,2]"), "(root)");
        assert_eq!(
            field_of(r#"{"eventId":"a\u0000b","type":"a","timestamp":"2026-04-03T12:00:00Z"}"#),
            "eventId"
        );
        assert_eq!(
            field_of(r#"{"eventId":"e","type":"a","timestamp":"2026-04-03T12:00:00Z","deviceId":"\u0000"}"#),
            "deviceId"
        );
        let long =
            format!(r#"{{"eventId":"{}","type":"a","timestamp":"2026-04-03T12:00:00Z"}}"#, "x".repeat(257));
        assert_eq!(field_of(&long), "eventId");
        let ok =
            format!(r#"{{"eventId":"{}","type":"a","timestamp":"2026-04-03T12:00:00Z"}}"#, "x".repeat(256));
        assert!(parse_inbound(ok.as_bytes()).is_ok());
    }

    #[test]
    fn a_number_beyond_a_float_is_valid_json() {
        let big =
            r#"{"eventId":"e","type":"a","timestamp":"2026-04-03T12:00:00Z","n":1e400,"l":[-1e999,{"m":2}]}"#;
        let Ok(Inbound::Event(e)) = parse_inbound(big.as_bytes()) else { panic!("refused") };
        assert_eq!((e.wap_event_id.as_str(), e.event_type.as_str()), ("e", "a"));
        // Still strict about everything else.
        let twice =
            r#"{"eventId":"e","type":"a","timestamp":"2026-04-03T12:00:00Z","n":1e400,"m":{"k":1,"k":2}}"#;
        assert_eq!(field_of(twice), "body");
        assert!(matches!(parse_inbound(b"{\"n\":1e400,}"), Err(SchemaError::InvalidJson(_))));
        let not_an_id = r#"{"eventId":1e400,"type":"a","timestamp":"2026-04-03T12:00:00Z"}"#;
        assert_eq!(field_of(not_an_id), "eventId");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let twice = r#"{"eventId":"e","type":"bad type!","type":"ok","timestamp":"2026-04-03T12:00:00Z"}"#;
        assert_eq!(field_of(twice), "body");
        let nested = r#"{"eventId":"e","type":"a","timestamp":"2026-04-03T12:00:00Z","message":{"body":"x","body":"y"}}"#;
        assert_eq!(field_of(nested), "body");
        let in_array = r#"{"eventId":"e","type":"a","timestamp":"2026-04-03T12:00:00Z","l":[{"k":1,"k":2}]}"#;
        assert_eq!(field_of(in_array), "body");
        assert!(matches!(parse_inbound(b"{\"a\":1,}"), Err(SchemaError::InvalidJson(_))));
        assert!(matches!(parse_inbound(b"{} trailing"), Err(SchemaError::InvalidJson(_))));
        assert!(parse_inbound(GOOD.as_bytes()).is_ok());
    }

    #[test]
    fn timestamps_are_normalised_to_utc_within_the_calendar() {
        let at = |ts: &str| {
            let body = format!(r#"{{"eventId":"e","type":"a","timestamp":"{ts}"}}"#);
            match parse_inbound(body.as_bytes()) {
                Ok(Inbound::Event(e)) => Ok(e.timestamp),
                Err(SchemaError::Invalid { field, .. }) => Err(field),
                other => panic!("{other:?}"),
            }
        };
        let utc = at("2026-04-03T14:00:00+02:00").unwrap();
        assert_eq!((utc.offset(), utc.hour()), (time::UtcOffset::UTC, 12));
        assert_eq!(at("9999-12-31T23:59:59-01:00"), Err("timestamp"));
        assert_eq!(at("0000-01-01T00:00:00+00:01"), Err("timestamp"));
        assert!(at("9999-12-31T23:59:59Z").is_ok());
        assert!(at("0000-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn not_json_is_its_own_error() {
        assert!(matches!(parse_inbound(b"{nope"), Err(SchemaError::InvalidJson(_))));
    }

    #[test]
    fn url_verification_needs_a_string_challenge() {
        assert_eq!(
            parse_inbound(br#"{"type":"url_verification","challenge":"c1"}"#).unwrap(),
            Inbound::UrlVerification { challenge: "c1".into() }
        );
        assert!(parse_inbound(br#"{"type":"url_verification","challenge":3}"#).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_inbound(&body);
        }

        #[test]
        fn never_panics_on_json_like_input(
            id in ".{0,300}", ty in ".{0,200}", ts in ".{0,40}", dev in proptest::option::of(".{0,300}")
        ) {
            let body = serde_json::json!({"eventId": id, "type": ty, "timestamp": ts, "deviceId": dev});
            let _ = parse_inbound(body.to_string().as_bytes());
        }
    }
}
