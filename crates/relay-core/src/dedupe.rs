//! A source's dedupe key (CONTRACT §7): JSON pointers (RFC 6901) whose values identify an event
//! besides its eventId, for providers that resend one message under new eventIds. The
//! identity is `key:` followed by the JSON array of the values, so it can never equal an eventId;
//! an event that lacks one of the values (or holds an object or array there) is identified by
//! its eventId as usual.
//!
//! An identity is bounded ([`MAX_IDENTITY_BYTES`]): it is a key of Postgres's dedupe index, whose
//! entries cannot exceed a page's third, so an event whose values make it longer is refused with
//! a clear reason instead of failing to store. Redis's fast path keeps only a fixed-size digest
//! ([`digest`]), so its memory per event is the same whatever the values.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::SourceId;

/// At most this many pointers per key.
pub const MAX_POINTERS: usize = 5;
const MAX_POINTER_CHARS: usize = 200;

/// Checks a dedupe key: 1 to 5 pointers, each starting with `/`, at most 200 characters, no NUL.
pub fn validate(pointers: &[String]) -> Result<(), String> {
    if pointers.is_empty() || pointers.len() > MAX_POINTERS {
        return Err(format!("dedupe_key: 1 to {MAX_POINTERS} JSON pointers (or null for the eventId)"));
    }
    for p in pointers {
        if !p.starts_with('/') || p.chars().count() > MAX_POINTER_CHARS || p.contains('\0') {
            return Err(format!(
                "dedupe_key: `{}` is not a JSON pointer like /message/id (at most {MAX_POINTER_CHARS} characters)",
                p.escape_debug()
            ));
        }
    }
    Ok(())
}

/// The longest identity, in bytes of its text (`key:` and the JSON array of the values).
pub const MAX_IDENTITY_BYTES: usize = 1024;

/// The identity of `event` under `pointers`: `Ok(None)` when a value is missing or not a scalar,
/// `Err` (naming the pointers) when the values make it longer than [`MAX_IDENTITY_BYTES`].
pub fn identity(event: &Value, pointers: &[String]) -> Result<Option<String>, String> {
    let values: Option<Vec<&Value>> = pointers
        .iter()
        .map(|p| event.pointer(p).filter(|v| !v.is_object() && !v.is_array() && !v.is_null()))
        .collect();
    let Some(values) = values else { return Ok(None) };
    let identity = format!("key:{}", serde_json::to_string(&values).map_err(|e| e.to_string())?);
    if identity.len() > MAX_IDENTITY_BYTES {
        return Err(format!(
            "the values at the source's dedupe key ({}) are {} bytes long; an event's identity may be \
             at most {MAX_IDENTITY_BYTES} bytes (point the dedupe key at ids, not at content)",
            pointers.join(", "),
            identity.len()
        ));
    }
    Ok(Some(identity))
}

/// The fixed-size name of an identity of `source` (an eventId, or a dedupe identity) in Redis's
/// fast path: 128 bits of SHA-256, hex. A collision would need about 2^64 identities of one source.
pub fn digest(source: SourceId, identity: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(source.uuid().as_bytes());
    hash.update(identity.as_bytes());
    hex::encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_same_message_under_two_event_ids_has_one_identity() {
        let a = json!({"eventId": "e1", "deviceId": "d", "message": {"id": "m1"}});
        let b = json!({"eventId": "e2", "deviceId": "d", "message": {"id": "m1"}});
        let k = key(&["/deviceId", "/message/id"]);
        assert_eq!(identity(&a, &k), identity(&b, &k));
        assert_eq!(identity(&a, &k).unwrap().unwrap(), r#"key:["d","m1"]"#);
        let c = json!({"eventId": "e3", "deviceId": "d", "message": {"id": "m2"}});
        assert_ne!(identity(&a, &k), identity(&c, &k));
    }

    #[test]
    fn a_missing_or_structured_value_falls_back_to_the_event_id() {
        let k = key(&["/message/id"]);
        assert_eq!(identity(&json!({"eventId": "e1", "status": "read"}), &k), Ok(None));
        assert_eq!(identity(&json!({"message": {"id": {"x": 1}}}), &k), Ok(None));
        assert_eq!(identity(&json!({"message": {"id": null}}), &k), Ok(None));
        assert_eq!(identity(&json!({"message": {"id": 7}}), &k).unwrap().unwrap(), "key:[7]");
    }

    #[test]
    fn an_identity_past_the_bound_is_refused_with_its_pointers() {
        let k = key(&["/message/id", "/message/body"]);
        let fits = json!({"message": {"id": "m", "body": "x".repeat(MAX_IDENTITY_BYTES - 20)}});
        assert!(identity(&fits, &k).unwrap().is_some());
        let long = json!({"message": {"id": "m", "body": "x".repeat(200_000)}});
        let e = identity(&long, &k).unwrap_err();
        assert!(e.contains("/message/id, /message/body") && e.contains("1024"), "{e}");
    }

    #[test]
    fn digests_are_fixed_size_and_per_source() {
        let (a, b) = (SourceId::new(), SourceId::new());
        let long = "x".repeat(200_000);
        assert_eq!(digest(a, &long).len(), 32);
        assert_eq!(digest(a, "e1"), digest(a, "e1"));
        assert_ne!(digest(a, "e1"), digest(b, "e1"));
        assert_ne!(digest(a, "e1"), digest(a, "e2"));
    }

    #[test]
    fn keys_are_pointers() {
        assert!(validate(&key(&["/message/id"])).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&key(&["message.id"])).is_err());
        assert!(validate(&key(&["/a", "/b", "/c", "/d", "/e", "/f"])).is_err());
        assert!(validate(&key(&["/a\0"])).is_err());
    }
}
