//! Inbound signature verification (CONTRACT §3). Each source chooses a scheme; the check runs on
//! the raw body bytes before anything parses them, compares in constant time, and accepts either
//! of two secrets while a rotation is in progress.

use hmac::Mac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::secret::{Secret, WebhookSecret};
use crate::sign::{self, hmac_sha256};

pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Wap-Signature";
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;
const MAX_TOLERANCE_SECONDS: u32 = 86_400;

/// A source's verification settings, as stored and as shown in the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Verification {
    /// `X-Wap-Signature: sha256=<hex>` (or bare hex) over the raw body.
    HmacSha256 {
        #[serde(default = "default_header")]
        header: String,
    },
    /// `t=<unix>,v1=<hex>[,v1=<hex>…]` over `<t>.<raw body>`.
    HmacSha256Timestamped {
        #[serde(default = "default_header")]
        header: String,
        #[serde(default = "default_tolerance")]
        tolerance_seconds: u32,
    },
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` with a `whsec_` secret.
    StandardWebhooks {
        #[serde(default = "default_tolerance")]
        tolerance_seconds: u32,
    },
    /// No verification: only when chosen explicitly; such a source is shown as unverified.
    None,
}

fn default_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}

fn default_tolerance() -> u32 {
    DEFAULT_TOLERANCE_SECONDS
}

impl Default for Verification {
    fn default() -> Self {
        Self::HmacSha256 { header: default_header() }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("verification.header must be a valid HTTP header name")]
    BadHeader,
    #[error("verification.tolerance_seconds must be between 1 and {MAX_TOLERANCE_SECONDS}")]
    BadTolerance,
    #[error("secret is required unless verification.scheme is `none`")]
    MissingSecret,
    #[error("secret must be between 8 and 1024 characters")]
    BadSecretLength,
    #[error("secret must be a `whsec_` secret for the standard_webhooks scheme")]
    BadWebhookSecret,
}

impl Verification {
    pub fn is_verified(&self) -> bool {
        !matches!(self, Self::None)
    }

    pub fn scheme_name(&self) -> &'static str {
        match self {
            Self::HmacSha256 { .. } => "hmac_sha256",
            Self::HmacSha256Timestamped { .. } => "hmac_sha256_timestamped",
            Self::StandardWebhooks { .. } => "standard_webhooks",
            Self::None => "none",
        }
    }

    /// The headers that carry signatures for this scheme (lower case).
    pub fn signature_headers(&self) -> Vec<String> {
        match self {
            Self::HmacSha256 { header } | Self::HmacSha256Timestamped { header, .. } => {
                vec![header.to_ascii_lowercase()]
            }
            Self::StandardWebhooks { .. } => vec!["webhook-signature".to_owned()],
            Self::None => Vec::new(),
        }
    }

    /// Checks the settings themselves, and that a secret fits the scheme.
    pub fn validate(&self, secret: Option<&Secret>) -> Result<(), ConfigError> {
        match self {
            Self::HmacSha256 { header } => check_header(header)?,
            Self::HmacSha256Timestamped { header, tolerance_seconds } => {
                check_header(header)?;
                check_tolerance(*tolerance_seconds)?;
            }
            Self::StandardWebhooks { tolerance_seconds } => check_tolerance(*tolerance_seconds)?,
            Self::None => return Ok(()),
        }
        let secret = secret.ok_or(ConfigError::MissingSecret)?;
        let len = secret.expose().chars().count();
        if !(8..=1024).contains(&len) {
            return Err(ConfigError::BadSecretLength);
        }
        if matches!(self, Self::StandardWebhooks { .. }) {
            WebhookSecret::parse(secret.expose()).map_err(|_| ConfigError::BadWebhookSecret)?;
        }
        Ok(())
    }
}

fn check_header(header: &str) -> Result<(), ConfigError> {
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if header.is_empty() || header.len() > 128 || !header.bytes().all(token_char) {
        return Err(ConfigError::BadHeader);
    }
    Ok(())
}

fn check_tolerance(seconds: u32) -> Result<(), ConfigError> {
    if seconds == 0 || seconds > MAX_TOLERANCE_SECONDS {
        return Err(ConfigError::BadTolerance);
    }
    Ok(())
}

/// Why a request's signature was refused. The text goes into the problem's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature header `{0}`")]
    Missing(String),
    #[error("malformed signature header `{0}`")]
    Malformed(String),
    #[error("signature timestamp is outside the tolerance of {0} seconds")]
    Expired(u32),
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies `body` against `secrets` (current first, then a previous one still valid).
/// `header` looks a request header up by its lower-case name.
pub fn verify<'h>(
    verification: &Verification,
    secrets: &[&Secret],
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    match verification {
        Verification::None => Ok(()),
        Verification::HmacSha256 { header: name } => {
            let value =
                header(&name.to_ascii_lowercase()).ok_or_else(|| SignatureError::Missing(name.clone()))?;
            let hex_sig = value.trim();
            let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
            let provided = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed(name.clone()))?;
            any_hmac_matches(secrets, &[body], &[provided])
        }
        Verification::HmacSha256Timestamped { header: name, tolerance_seconds } => {
            let value =
                header(&name.to_ascii_lowercase()).ok_or_else(|| SignatureError::Missing(name.clone()))?;
            let (t, candidates) =
                parse_timestamped(value).ok_or_else(|| SignatureError::Malformed(name.clone()))?;
            check_age(t, now_unix, *tolerance_seconds)?;
            let t_text = t.to_string();
            any_hmac_matches(secrets, &[t_text.as_bytes(), b".", body], &candidates)
        }
        Verification::StandardWebhooks { tolerance_seconds } => {
            let id = header("webhook-id").ok_or_else(|| SignatureError::Missing("webhook-id".into()))?;
            let ts = header("webhook-timestamp")
                .ok_or_else(|| SignatureError::Missing("webhook-timestamp".into()))?;
            let sig = header("webhook-signature")
                .ok_or_else(|| SignatureError::Missing("webhook-signature".into()))?;
            let ts: i64 =
                ts.trim().parse().map_err(|_| SignatureError::Malformed("webhook-timestamp".into()))?;
            check_age(ts, now_unix, *tolerance_seconds)?;
            let keys: Vec<WebhookSecret> =
                secrets.iter().filter_map(|s| WebhookSecret::parse(s.expose()).ok()).collect();
            let keys: Vec<&WebhookSecret> = keys.iter().collect();
            if sign::verify_header(&keys, id, ts, body, sig) { Ok(()) } else { Err(SignatureError::Mismatch) }
        }
    }
}

/// Parses `t=<unix>,v1=<hex>[,v1=<hex>…]`; other keys are ignored so a sender can add schemes.
pub fn parse_timestamped(value: &str) -> Option<(i64, Vec<Vec<u8>>)> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in value.split(',') {
        let (key, val) = part.trim().split_once('=')?;
        match key {
            "t" => t = Some(val.parse::<i64>().ok()?),
            "v1" => sigs.push(hex::decode(val).ok()?),
            _ => {}
        }
    }
    if sigs.is_empty() {
        return None;
    }
    Some((t?, sigs))
}

fn check_age(t: i64, now: i64, tolerance: u32) -> Result<(), SignatureError> {
    if now.abs_diff(t) > u64::from(tolerance) {
        return Err(SignatureError::Expired(tolerance));
    }
    Ok(())
}

/// Constant-time comparison of every candidate against the HMAC under every secret; every
/// pair is checked so the time taken does not depend on which one matched.
fn any_hmac_matches(
    secrets: &[&Secret],
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> Result<(), SignatureError> {
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = hmac_sha256(secret.expose().as_bytes(), parts).finalize().into_bytes();
        for candidate in candidates {
            matched |= expected.as_slice().ct_eq(candidate.as_slice());
        }
    }
    if bool::from(matched) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests;
