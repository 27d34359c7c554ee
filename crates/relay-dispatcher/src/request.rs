//! The outbound request's headers (CONTRACT §4): Standard Webhooks `webhook-id` (the relay's
//! event id, the same on every retry and redelivery), `webhook-timestamp` and `webhook-signature`
//! (one signature per live secret), `X-Wap-Event-Id`, `X-Wap-Event-Type`, `X-Relay-Attempt`,
//! `Content-Type`, and the destination's custom headers underneath. The body is the event's raw
//! bytes, untouched.
//!
//! `wap-relay listen` signs what it forwards with the same headers, from here.
//!
//! Invariant: the relay's headers are inserted last, so nothing a tenant configures can replace
//! them (custom headers are also filtered when the destination is prepared).

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use relay_core::EventId;
use relay_core::secret::WebhookSecret;
use relay_core::sign::signature_header;

/// What the headers of one attempt depend on.
#[derive(Clone)]
pub struct Outbound<'a> {
    pub event_id: EventId,
    pub wap_event_id: &'a str,
    pub event_type: &'a str,
    pub attempt: i32,
    pub timestamp: i64,
    pub body: &'a [u8],
    pub secrets: &'a [WebhookSecret],
}

pub fn headers(custom: &HeaderMap, out: &Outbound<'_>) -> HeaderMap {
    let mut map = custom.clone();
    let msg_id = out.event_id.to_string();
    let secrets: Vec<&WebhookSecret> = out.secrets.iter().collect();
    let signature = signature_header(&secrets, &msg_id, out.timestamp, out.body);
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    map.insert("webhook-id", value(&msg_id));
    map.insert("webhook-timestamp", HeaderValue::from(out.timestamp));
    map.insert("webhook-signature", value(&signature));
    map.insert("x-wap-event-id", value(out.wap_event_id));
    map.insert("x-wap-event-type", value(out.event_type));
    map.insert("x-relay-attempt", HeaderValue::from(out.attempt));
    map
}

/// A header value. A text a header cannot carry as is (control characters) is sent with its
/// control, `%` and non-ASCII bytes percent-encoded.
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| {
        let mut safe = String::with_capacity(text.len());
        for b in text.bytes() {
            if b == b'\t' || (0x20..0x7f).contains(&b) && b != b'%' {
                safe.push(b as char);
            } else {
                safe.push_str(&format!("%{b:02X}"));
            }
        }
        HeaderValue::from_str(&safe).unwrap_or_else(|_| HeaderValue::from_static(""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_every_contract_header_and_custom_ones_stay_underneath() {
        let secret = WebhookSecret::generate();
        let old = WebhookSecret::generate();
        let mut custom = HeaderMap::new();
        custom.insert("x-team", HeaderValue::from_static("payments"));
        let event_id = EventId::new();
        let out = Outbound {
            event_id,
            wap_event_id: "evt_123",
            event_type: "message.received",
            attempt: 3,
            timestamp: 1_700_000_000,
            body: b"{}",
            secrets: &[secret.clone(), old.clone()],
        };
        let h = headers(&custom, &out);
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["webhook-id"], event_id.to_string().as_str());
        assert_eq!(h["webhook-timestamp"], "1700000000");
        assert_eq!(h["x-wap-event-id"], "evt_123");
        assert_eq!(h["x-wap-event-type"], "message.received");
        assert_eq!(h["x-relay-attempt"], "3");
        assert_eq!(h["x-team"], "payments");
        let sig = h["webhook-signature"].to_str().unwrap();
        assert_eq!(sig.split(' ').count(), 2);
        for s in [&secret, &old] {
            assert!(relay_core::sign::verify_header(&[s], &event_id.to_string(), 1_700_000_000, b"{}", sig));
        }
    }

    #[test]
    fn control_characters_are_escaped_not_dropped() {
        assert_eq!(value("a\nb%"), "a%0Ab%25");
        assert_eq!(value("plain id"), "plain id");
    }
}
