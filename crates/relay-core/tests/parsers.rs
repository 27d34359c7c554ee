//! Properties of the public parsers that take bytes from outside (request headers, query
//! parameters, destination answers): never a panic, and what they accept means what it says.
//! The event schema and signature-header parsers have theirs next to them (`event.rs`,
//! `verify/tests.rs`).

use std::time::Duration;

use proptest::prelude::*;
use relay_core::retry::parse_retry_after;
use relay_core::{DeliveryId, EventId};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_775_217_600).unwrap()
}

proptest! {
    #[test]
    fn retry_after_never_panics(value in ".{0,64}") {
        let _ = parse_retry_after(&value, now());
    }

    #[test]
    fn retry_after_seconds_mean_seconds(seconds in 0u64..=10_000_000, pad in " {0,3}") {
        let value = format!("{pad}{seconds}{pad}");
        prop_assert_eq!(parse_retry_after(&value, now()), Some(Duration::from_secs(seconds)));
    }

    #[test]
    fn retry_after_dates_give_the_time_until_them(ahead in -86_400i64..=86_400) {
        let date = now() + time::Duration::seconds(ahead);
        let value = httpdate::fmt_http_date(date.into());
        let expected = Duration::from_secs(u64::try_from(ahead).unwrap_or(0));
        prop_assert_eq!(parse_retry_after(&value, now()), Some(expected));
    }

    #[test]
    fn ids_and_cursors_never_panic_and_round_trip(value in ".{0,80}", raw in any::<u128>()) {
        let _ = value.parse::<EventId>();
        let id = DeliveryId::from_uuid(uuid::Uuid::from_u128(raw));
        prop_assert_eq!(id.to_string().parse::<DeliveryId>().ok(), Some(id));
        // Another kind's id is not a cursor of this list.
        let other = EventId::from_uuid(uuid::Uuid::from_u128(raw)).to_string();
        prop_assert!(other.parse::<DeliveryId>().is_err());
    }

    #[test]
    fn header_name_rules_never_panic(name in ".{0,80}") {
        let _ = relay_core::headers::is_credential(&name);
        let _ = relay_core::headers::custom_header_refusal(&name);
        let _ = relay_core::headers::is_valid_name(&name);
    }
}
