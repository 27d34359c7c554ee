//! The shared vocabulary: the states and kinds every crate stores, reads and shows — a
//! delivery's status, how an attempt ended, what triggered it, a tenant's status (the plan is in
//! [`crate::plan`]). Each is written once here, with its one text form; store rows and API types
//! use these types. With the `utoipa` feature each is also an OpenAPI schema.

use std::fmt;
use std::str::FromStr;

/// A text that is not a value of the vocabulary `kind`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct Unknown {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = Unknown;

            fn from_str(s: &str) -> Result<Self, Unknown> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| Unknown { kind: $kind, value: s.to_owned() })
            }
        }

        /// For rows read from the database (`#[sqlx(try_from = "String")]`).
        impl TryFrom<String> for $name {
            type Error = Unknown;

            fn try_from(s: String) -> Result<Self, Unknown> {
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// A delivery's state.
    DeliveryStatus, "delivery status" {
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

vocabulary! {
    /// How an attempt ended (CONTRACT §5, attempts).
    AttemptOutcome, "attempt outcome" {
        Success => "success",
        HttpError => "http_error",
        Timeout => "timeout",
        ConnectError => "connect_error",
        TlsError => "tls_error",
        Blocked => "blocked",
    }
}

vocabulary! {
    /// What causes an attempt: `auto` (ingest, retry), `manual` (redeliver) or `replay`.
    Trigger, "trigger" {
        Auto => "auto",
        Manual => "manual",
        Replay => "replay",
    }
}

vocabulary! {
    /// Whether a tenant's sources accept events.
    TenantStatus, "tenant status" {
        Active => "active",
        Suspended => "suspended",
    }
}

vocabulary! {
    /// How a destination's deliveries are ordered (CONTRACT §7): `none` (any order, the
    /// default) or `per_device` (one at a time per `deviceId`, in acceptance order).
    #[derive(Default)]
    DeliveryOrdering, "delivery ordering" {
        #[default]
        None => "none",
        PerDevice => "per_device",
    }
}

impl DeliveryOrdering {
    /// The key that orders a delivery of an event from `device_id` to a destination ordered
    /// this way: `None` means the delivery is neither held nor holds others back. The one rule
    /// for which deliveries take part in per-device ordering.
    pub fn device_key(self, device_id: Option<&str>) -> Option<&str> {
        match self {
            Self::None => None,
            Self::PerDevice => device_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_per_device_orders_and_only_events_with_a_device() {
        assert_eq!(DeliveryOrdering::default(), DeliveryOrdering::None);
        assert_eq!(DeliveryOrdering::None.device_key(Some("dev_1")), None);
        assert_eq!(DeliveryOrdering::PerDevice.device_key(Some("dev_1")), Some("dev_1"));
        assert_eq!(DeliveryOrdering::PerDevice.device_key(None), None);
    }

    /// The text form is the serde form, so the database and the API agree.
    fn agree<T: serde::Serialize + FromStr<Err = Unknown> + PartialEq + fmt::Debug + Copy>(
        all: &[T],
        text: fn(T) -> &'static str,
    ) {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::Value::from(text(*v)));
            assert_eq!(text(*v).parse::<T>().unwrap(), *v);
        }
    }

    #[test]
    fn text_and_serde_forms_agree_and_round_trip() {
        agree(DeliveryStatus::ALL, DeliveryStatus::as_str);
        agree(AttemptOutcome::ALL, AttemptOutcome::as_str);
        agree(Trigger::ALL, Trigger::as_str);
        agree(TenantStatus::ALL, TenantStatus::as_str);
        agree(DeliveryOrdering::ALL, DeliveryOrdering::as_str);
        assert_eq!(
            "paused".parse::<TenantStatus>(),
            Err(Unknown { kind: "tenant status", value: "paused".into() })
        );
    }
}
