//! Opaque, prefixed identifiers. Every id is a UUIDv7 (time-ordered, so keyset pagination by id
//! is also pagination by creation time) rendered as `<prefix>_<32 hex digits>`. The prefix makes
//! a pasted id self-describing and keeps a source id from being accepted where a destination id
//! is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The string was not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id")]
pub struct InvalidId {
    pub kind: &'static str,
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every id made before it on this clock.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let hex = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .filter(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or(InvalidId { kind: $kind })?;
                Uuid::parse_str(hex).map(Self).map_err(|_| InvalidId { kind: $kind })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// A tenant: one SaaS customer of the relay.
    TenantId, "ten", "tenant"
);
define_id!(
    /// A source: one WAPing account's ingest URL.
    SourceId, "src", "source"
);
define_id!(
    /// A destination: one URL of a tenant that events fan out to.
    DestinationId, "dst", "destination"
);
define_id!(
    /// The relay's own id of a stored event; also the outbound `webhook-id`.
    EventId, "evt", "event"
);
define_id!(
    /// One event's delivery to one destination.
    DeliveryId, "dlv", "delivery"
);
define_id!(
    /// One HTTP attempt of a delivery.
    AttemptId, "att", "attempt"
);
define_id!(
    /// One refused ingest request.
    RejectionId, "rej", "rejection"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_json() {
        let id = SourceId::new();
        let text = id.to_string();
        assert!(text.starts_with("src_"));
        assert_eq!(text.len(), 4 + 32);
        assert_eq!(text.parse::<SourceId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SourceId>(&json).unwrap(), id);
    }

    #[test]
    fn refuses_other_kinds_and_garbage() {
        let id = SourceId::new().to_string();
        assert!(id.parse::<DestinationId>().is_err());
        for bad in ["", "src_", "src_123", "src-0123456789abcdef0123456789abcdef", "x"] {
            assert!(bad.parse::<SourceId>().is_err(), "{bad}");
        }
        let non_hex = format!("src_{}", "g".repeat(32));
        assert!(non_hex.parse::<SourceId>().is_err());
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = EventId::new();
        let b = EventId::new();
        assert!(b > a);
    }
}
