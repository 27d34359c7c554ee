//! Operational events (CONTRACT §7): the `relay.*` events the relay emits into a tenant's stream
//! about its own state changes. They are stored with the nil source id ([`RELAY_SOURCE`], "the
//! relay itself", listed with `source_id` null) and reach only destinations whose `event_types`
//! name them: a pattern starting `relay.` matches the relay's events and nothing a source sent,
//! any other pattern (`*` included) matches what sources sent and none of the relay's events
//! ([`crate::filter`]). Their payload is `{"eventId", "type", "timestamp", "data"}`.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::{EventId, SourceId};

/// The source of the events the relay emits itself.
pub const RELAY_SOURCE: SourceId = SourceId::from_uuid(uuid::Uuid::nil());

/// The prefix of every operational event type, and of the patterns that match them.
pub const PREFIX: &str = "relay.";

pub const DESTINATION_DISABLED: &str = "relay.destination.disabled";
pub const DESTINATION_RECOVERED: &str = "relay.destination.recovered";
pub const DELIVERY_FAILED: &str = "relay.delivery.failed";
pub const SOURCE_SILENT: &str = "relay.source.silent";
pub const SOURCE_RESUMED: &str = "relay.source.resumed";
pub const DEVICE_SILENT: &str = "relay.device.silent";
pub const DEVICE_RESUMED: &str = "relay.device.resumed";

/// Every type the relay emits (the test event, `relay.test`, is sent to one destination only).
pub const TYPES: &[&str] = &[
    DESTINATION_DISABLED,
    DESTINATION_RECOVERED,
    DELIVERY_FAILED,
    SOURCE_SILENT,
    SOURCE_RESUMED,
    DEVICE_SILENT,
    DEVICE_RESUMED,
];

/// The shortest and longest `silence_alert_seconds` a source may have (a minute, 30 days).
pub const SILENCE_MIN_SECONDS: u32 = 60;
pub const SILENCE_MAX_SECONDS: u32 = 30 * 86_400;

/// Checks a source's `silence_alert_seconds`.
pub fn validate_silence(seconds: u32) -> Result<i32, String> {
    if (SILENCE_MIN_SECONDS..=SILENCE_MAX_SECONDS).contains(&seconds) {
        Ok(seconds as i32)
    } else {
        Err(format!(
            "silence_alert_seconds: must be {SILENCE_MIN_SECONDS} to {SILENCE_MAX_SECONDS} (or null for no alerts)"
        ))
    }
}

/// Whether an `event_types` pattern is one for the relay's own events.
pub fn is_operational_pattern(pattern: &str) -> bool {
    pattern.starts_with(PREFIX)
}

/// The eventId an operational event is sent with: its id in the relay.
pub fn event_id_text(id: EventId) -> String {
    id.to_string()
}

/// The payload of an operational event, compact JSON: `data` holds the ids concerned and the
/// details of the change.
pub fn payload(id: EventId, event_type: &str, at: OffsetDateTime, data: Map<String, Value>) -> Vec<u8> {
    let timestamp = at.format(&Rfc3339).unwrap_or_default();
    let body = serde_json::json!({
        "eventId": event_id_text(id),
        "type": event_type,
        "timestamp": timestamp,
        "data": Value::Object(data),
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_the_four_fields() {
        let id = EventId::new();
        let at = OffsetDateTime::from_unix_timestamp(1_775_217_600).unwrap();
        let mut data = Map::new();
        data.insert("destinationId".into(), "dst_1".into());
        let body: Value = serde_json::from_slice(&payload(id, DESTINATION_DISABLED, at, data)).unwrap();
        assert_eq!(body["eventId"], id.to_string());
        assert_eq!(body["type"], DESTINATION_DISABLED);
        assert_eq!(body["timestamp"], "2026-04-03T12:00:00Z");
        assert_eq!(body["data"]["destinationId"], "dst_1");
        assert_eq!(body.as_object().unwrap().len(), 4);
    }

    #[test]
    fn silence_alerts_are_a_minute_to_thirty_days() {
        assert_eq!(validate_silence(60), Ok(60));
        assert_eq!(validate_silence(2_592_000), Ok(2_592_000));
        assert!(validate_silence(59).is_err() && validate_silence(2_592_001).is_err());
    }

    #[test]
    fn every_type_is_in_the_namespace() {
        assert!(TYPES.iter().all(|t| t.starts_with(PREFIX)));
        assert!(is_operational_pattern("relay.*") && is_operational_pattern(SOURCE_SILENT));
        assert!(!is_operational_pattern("*") && !is_operational_pattern("message.*"));
    }
}
