//! The one rule for text the relay stores (names, descriptions, filters, header values, secrets,
//! query filters): Postgres `text` cannot hold U+0000, so a NUL anywhere is refused up front,
//! naming where it was, instead of reaching the database as a 500.

use serde_json::Value;

/// Whether `text` can be stored.
pub fn is_storable(text: &str) -> bool {
    !text.contains('\0')
}

/// The JSON pointer of the first string (or object key) in `value` that cannot be stored.
pub fn first_unstorable(value: &Value) -> Option<String> {
    fn walk(value: &Value, at: &mut String) -> bool {
        match value {
            Value::String(s) => !is_storable(s),
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| descend(at, &i.to_string(), v)),
            Value::Object(map) => {
                map.iter().any(|(k, v)| !is_storable(k) && mark(at, k) || descend(at, k, v))
            }
            _ => false,
        }
    }
    fn mark(at: &mut String, key: &str) -> bool {
        push(at, key);
        true
    }
    fn push(at: &mut String, key: &str) {
        at.push('/');
        at.push_str(&key.replace('~', "~0").replace('/', "~1").replace('\0', "\\u0000"));
    }
    fn descend(at: &mut String, key: &str, value: &Value) -> bool {
        let len = at.len();
        push(at, key);
        if walk(value, at) {
            return true;
        }
        at.truncate(len);
        false
    }
    let mut at = String::new();
    walk(value, &mut at).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_first_nul_by_pointer() {
        assert_eq!(
            first_unstorable(&json!({"name": "ok", "list": ["a", "b\u{0}"]})).as_deref(),
            Some("/list/1")
        );
        assert_eq!(first_unstorable(&json!({"h": {"X-A": "\u{0}"}})).as_deref(), Some("/h/X-A"));
        assert_eq!(first_unstorable(&json!({"a/b": "\u{0}"})).as_deref(), Some("/a~1b"));
        assert_eq!(first_unstorable(&json!({"ok": ["x", 1, null, {"y": true}]})), None);
        assert!(first_unstorable(&json!({"k\u{0}": 1})).is_some());
    }
}
