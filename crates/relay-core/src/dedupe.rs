//! A source's dedupe key (CONTRACT §7): JSON pointers (RFC 6901) whose values identify an event
//! besides its eventId, for providers that resend one message under new eventIds. The
//! identity is `key:` followed by the JSON array of the values, so it can never equal an eventId;
//! an event that lacks one of the values (or holds an object or array there) is identified by
//! its eventId as usual.

use serde_json::Value;

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

/// The identity of `event` under `pointers`; `None` when a value is missing or not a scalar.
pub fn identity(event: &Value, pointers: &[String]) -> Option<String> {
    let values: Option<Vec<&Value>> = pointers
        .iter()
        .map(|p| event.pointer(p).filter(|v| !v.is_object() && !v.is_array() && !v.is_null()))
        .collect();
    Some(format!("key:{}", serde_json::to_string(&values?).ok()?))
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
        assert_eq!(identity(&a, &k).unwrap(), r#"key:["d","m1"]"#);
        let c = json!({"eventId": "e3", "deviceId": "d", "message": {"id": "m2"}});
        assert_ne!(identity(&a, &k), identity(&c, &k));
    }

    #[test]
    fn a_missing_or_structured_value_falls_back_to_the_event_id() {
        let k = key(&["/message/id"]);
        assert_eq!(identity(&json!({"eventId": "e1", "status": "read"}), &k), None);
        assert_eq!(identity(&json!({"message": {"id": {"x": 1}}}), &k), None);
        assert_eq!(identity(&json!({"message": {"id": null}}), &k), None);
        assert_eq!(identity(&json!({"message": {"id": 7}}), &k).unwrap(), "key:[7]");
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
