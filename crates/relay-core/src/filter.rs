//! Destination filters (CONTRACT §4): which events fan out to which destination.
//! `source_ids` and `device_ids` of `None` match everything; `event_types` entries are an exact
//! type, `prefix.*` (the prefix followed by a dot, then anything), or `*`.
//!
//! The relay's own events (`relay.*`, from [`crate::operational::RELAY_SOURCE`]) are matched by
//! `event_types` alone, and only by patterns that name them (starting `relay.`); those patterns
//! match nothing a source sent, so a source cannot pass for the relay, and `*` never matches
//! the relay's events.

use crate::ids::SourceId;

/// The fields of an event a filter looks at.
#[derive(Debug, Clone, Copy)]
pub struct EventKey<'a> {
    pub source_id: SourceId,
    pub event_type: &'a str,
    pub device_id: Option<&'a str>,
}

/// A destination's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub source_ids: Option<Vec<SourceId>>,
    pub event_types: Vec<String>,
    pub device_ids: Option<Vec<String>>,
}

impl Filter {
    pub fn matches(&self, event: &EventKey<'_>) -> bool {
        if event.source_id == crate::operational::RELAY_SOURCE {
            return self
                .event_types
                .iter()
                .any(|p| crate::operational::is_operational_pattern(p) && type_matches(p, event.event_type));
        }
        self.source_ids.as_ref().is_none_or(|ids| ids.contains(&event.source_id))
            && self
                .event_types
                .iter()
                .any(|p| !crate::operational::is_operational_pattern(p) && type_matches(p, event.event_type))
            && self
                .device_ids
                .as_ref()
                .is_none_or(|ids| event.device_id.is_some_and(|d| ids.iter().any(|id| id == d)))
    }
}

/// One `event_types` pattern against one event type.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => {
            event_type.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
        }
        None => pattern == event_type,
    }
}

/// Why an `event_types` pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event type pattern `{0}` must be `*`, an exact type, or `prefix.*`")]
pub struct BadPattern(pub String);

pub fn validate_pattern(pattern: &str) -> Result<(), BadPattern> {
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    let ok = pattern == "*"
        || (!body.is_empty()
            && body.len() <= crate::event::MAX_TYPE_LEN
            && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')));
    if ok { Ok(()) } else { Err(BadPattern(pattern.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns() {
        assert!(type_matches("*", "message.received"));
        assert!(type_matches("message.received", "message.received"));
        assert!(!type_matches("message.received", "message.receivedx"));
        assert!(type_matches("message.*", "message.received"));
        assert!(type_matches("message.*", "message.status.read"));
        assert!(!type_matches("message.*", "message"));
        assert!(!type_matches("message.*", "messages.received"));
        assert!(!type_matches("message.*", "session.health"));
    }

    #[test]
    fn filter_combines_all_three() {
        let src = SourceId::new();
        let other = SourceId::new();
        let f = Filter {
            source_ids: Some(vec![src]),
            event_types: vec!["message.*".into()],
            device_ids: Some(vec!["dev_1".into()]),
        };
        let key = |s, t, d| EventKey { source_id: s, event_type: t, device_id: d };
        assert!(f.matches(&key(src, "message.received", Some("dev_1"))));
        assert!(!f.matches(&key(other, "message.received", Some("dev_1"))));
        assert!(!f.matches(&key(src, "session.health", Some("dev_1"))));
        assert!(!f.matches(&key(src, "message.received", Some("dev_2"))));
        assert!(!f.matches(&key(src, "message.received", None)));
        let all = Filter { source_ids: None, event_types: vec!["*".into()], device_ids: None };
        assert!(all.matches(&key(other, "anything", None)));
    }

    #[test]
    fn relay_events_match_only_patterns_that_name_them() {
        use crate::operational::{DEVICE_SILENT, RELAY_SOURCE};
        let src = SourceId::new();
        let f = |types: &[&str]| Filter {
            source_ids: Some(vec![src]),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            device_ids: Some(vec!["dev_1".into()]),
        };
        let relay = EventKey { source_id: RELAY_SOURCE, event_type: DEVICE_SILENT, device_id: Some("dev_9") };
        assert!(!f(&["*"]).matches(&relay), "* does not match the relay's events");
        assert!(f(&["relay.*"]).matches(&relay), "source and device filters do not apply to them");
        assert!(f(&[DEVICE_SILENT]).matches(&relay));
        assert!(!f(&["relay.source.*"]).matches(&relay));
        let spoof = EventKey { source_id: src, event_type: DEVICE_SILENT, device_id: Some("dev_1") };
        assert!(!f(&["relay.*"]).matches(&spoof), "a source's event is never a relay event");
        assert!(f(&["*"]).matches(&spoof));
    }

    #[test]
    fn pattern_validation() {
        for ok in ["*", "message.received", "message.*", "a:b-c_d"] {
            assert!(validate_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".*", "mess age", "message.**", "*.received"] {
            assert!(validate_pattern(bad).is_err(), "{bad}");
        }
    }
}
