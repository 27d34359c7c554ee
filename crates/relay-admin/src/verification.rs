//! The API shape of a source's verification settings. It mirrors
//! `relay_core::verify::Verification` field for field, but refuses unknown fields (a misspelt
//! `hedaer` must not silently fall back to the default header) and carries the OpenAPI schema.

use relay_core::verify::{DEFAULT_SIGNATURE_HEADER, DEFAULT_TOLERANCE_SECONDS, Verification};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a source's requests are verified (CONTRACT §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = Verification)]
pub enum VerificationConfig {
    /// `X-Wap-Signature: sha256=<hex>` (or bare hex): HMAC-SHA256 of the raw body.
    HmacSha256 {
        /// The header carrying the signature (default `X-Wap-Signature`).
        #[serde(default = "default_header")]
        header: String,
    },
    /// `t=<unix>,v1=<hex>[,v1=<hex>…]` over `<t>.<raw body>`.
    HmacSha256Timestamped {
        #[serde(default = "default_header")]
        header: String,
        /// Largest accepted age of `t`, 1 to 86400 (default 300).
        #[serde(default = "default_tolerance")]
        tolerance_seconds: u32,
    },
    /// Standard Webhooks headers with a `whsec_` secret.
    StandardWebhooks {
        #[serde(default = "default_tolerance")]
        tolerance_seconds: u32,
    },
    /// No verification: the source is shown as unverified. (A struct variant, so that unknown
    /// fields are refused here too.)
    None {},
}

fn default_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}

fn default_tolerance() -> u32 {
    DEFAULT_TOLERANCE_SECONDS
}

impl From<VerificationConfig> for Verification {
    fn from(v: VerificationConfig) -> Self {
        match v {
            VerificationConfig::HmacSha256 { header } => Verification::HmacSha256 { header },
            VerificationConfig::HmacSha256Timestamped { header, tolerance_seconds } => {
                Verification::HmacSha256Timestamped { header, tolerance_seconds }
            }
            VerificationConfig::StandardWebhooks { tolerance_seconds } => {
                Verification::StandardWebhooks { tolerance_seconds }
            }
            VerificationConfig::None {} => Verification::None,
        }
    }
}

impl From<&Verification> for VerificationConfig {
    fn from(v: &Verification) -> Self {
        match v.clone() {
            Verification::HmacSha256 { header } => Self::HmacSha256 { header },
            Verification::HmacSha256Timestamped { header, tolerance_seconds } => {
                Self::HmacSha256Timestamped { header, tolerance_seconds }
            }
            Verification::StandardWebhooks { tolerance_seconds } => {
                Self::StandardWebhooks { tolerance_seconds }
            }
            Verification::None => Self::None {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_unknown_fields_are_refused() {
        let v: VerificationConfig = serde_json::from_str(r#"{"scheme":"hmac_sha256"}"#).unwrap();
        assert_eq!(Verification::from(v), Verification::default());
        assert!(
            serde_json::from_str::<VerificationConfig>(r#"{"scheme":"hmac_sha256","hedaer":"x"}"#).is_err()
        );
        assert!(serde_json::from_str::<VerificationConfig>(r#"{"scheme":"none","x":1}"#).is_err());
        assert!(serde_json::from_str::<VerificationConfig>(r#"{"scheme":"md5"}"#).is_err());
    }
}
