//! Secrets and their protection at rest. A [`Secret`] never prints its value in `Debug` or
//! `Display`; a [`MasterKey`] seals secrets with XChaCha20-Poly1305 (random 192-bit nonce per
//! seal, so nonces never repeat in practice) before they reach the database.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const NONCE_LEN: usize = 24;
const WHSEC_PREFIX: &str = "whsec_";

/// A secret string: its value is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A few characters that help a user recognise which secret is configured.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "…".to_owned();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("…{tail}")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a sealed secret could not be opened or a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    #[error("a stored secret could not be decrypted with the master key")]
    Undecryptable,
    #[error("a signing secret must be `whsec_` followed by base64 of 24 to 64 bytes")]
    BadWebhookSecret,
}

/// The key that encrypts stored secrets, and during a rotation the previous one: secrets are
/// sealed with the current key and opened with either (`RELAY_MASTER_KEY_PREVIOUS`).
#[derive(Clone)]
pub struct MasterKey {
    current: XChaCha20Poly1305,
    previous: Option<XChaCha20Poly1305>,
}

fn cipher(text: &str) -> Result<XChaCha20Poly1305, SecretError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| SecretError::BadMasterKey)?;
    XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SecretError::BadMasterKey)
}

impl MasterKey {
    /// Reads a base64-encoded 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        Ok(Self { current: cipher(text)?, previous: None })
    }

    /// This key, also opening what `previous` (base64) sealed.
    pub fn with_previous(mut self, previous: &str) -> Result<Self, SecretError> {
        self.previous = Some(cipher(previous)?);
        Ok(self)
    }

    /// Whether `sealed` was sealed with the current key (not only the previous one).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        open_with(&self.current, sealed).is_ok()
    }

    /// A fresh random key, base64-encoded, for development setups.
    pub fn generate_base64() -> String {
        STANDARD.encode(random_bytes::<32>())
    }

    /// `nonce || ciphertext+tag`.
    pub fn seal(&self, secret: &Secret) -> Vec<u8> {
        let nonce = XNonce::generate();
        let ciphertext = self
            .current
            .encrypt(&nonce, secret.expose().as_bytes())
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Secret, SecretError> {
        match (open_with(&self.current, sealed), &self.previous) {
            (Err(_), Some(previous)) => open_with(previous, sealed),
            (result, _) => result,
        }
    }
}

fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8]) -> Result<Secret, SecretError> {
    if sealed.len() < NONCE_LEN {
        return Err(SecretError::Undecryptable);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Undecryptable)?;
    let plain = cipher.decrypt(&nonce, ciphertext).map_err(|_| SecretError::Undecryptable)?;
    String::from_utf8(plain).map(Secret).map_err(|_| SecretError::Undecryptable)
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A Standard Webhooks secret: `whsec_` + base64 of the HMAC key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: Secret,
    key: Vec<u8>,
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(WHSEC_PREFIX).ok_or(SecretError::BadWebhookSecret)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::BadWebhookSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::BadWebhookSecret);
        }
        Ok(Self { text: Secret::new(text), key })
    }

    /// A new random 32-byte secret.
    pub fn generate() -> Self {
        let key = random_bytes::<32>().to_vec();
        let text = Secret::new(format!("{WHSEC_PREFIX}{}", STANDARD.encode(&key)));
        Self { text, key }
    }

    /// The HMAC key: the base64-decoded part of the secret.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn as_secret(&self) -> &Secret {
        &self.text
    }

    /// The key of `X-Hub-Signature-256` for a `meta_cloud_api` destination: the UTF-8 bytes of
    /// the whole `whsec_…` string, as its owner pastes it where Meta code expects the app secret
    /// (Meta's receivers key their HMAC with the app secret string's bytes; the decoded key is
    /// not even text, so no receiver could be configured with it).
    pub fn meta_app_secret(&self) -> &[u8] {
        self.text.expose().as_bytes()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Random bytes from the operating system's CSPRNG (through `rand`'s thread generator).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// How long the previous secret keeps working after a rotation when the tenant does not say.
pub const DEFAULT_PREVIOUS_VALID_SECONDS: u32 = 86_400;
/// The longest the previous secret may keep working.
pub const MAX_PREVIOUS_VALID_SECONDS: u32 = 7 * 86_400;

/// The rotation grace rule, for source and destination secrets alike: when the previous secret
/// stops working after a rotation at `now` (`asked` seconds, the default when `None`), or the
/// error to answer when `asked` is too long.
pub fn previous_valid_until(
    asked: Option<u32>,
    now: time::OffsetDateTime,
) -> Result<time::OffsetDateTime, String> {
    let grace = asked.unwrap_or(DEFAULT_PREVIOUS_VALID_SECONDS);
    if grace > MAX_PREVIOUS_VALID_SECONDS {
        return Err(format!("previous_valid_seconds: must be between 0 and {MAX_PREVIOUS_VALID_SECONDS}"));
    }
    Ok(now + time::Duration::seconds(i64::from(grace)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_secret_works_a_day_by_default_and_a_week_at_most() {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        assert_eq!(previous_valid_until(None, now), Ok(now + time::Duration::days(1)));
        assert_eq!(previous_valid_until(Some(0), now), Ok(now));
        assert_eq!(
            previous_valid_until(Some(MAX_PREVIOUS_VALID_SECONDS), now),
            Ok(now + time::Duration::days(7))
        );
        assert!(previous_valid_until(Some(MAX_PREVIOUS_VALID_SECONDS + 1), now).is_err());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.hint(), "…cret");
        assert_eq!(Secret::new("short").hint(), "…");
        let w = WebhookSecret::generate();
        assert!(!format!("{w:?}").contains("whsec_"));
    }

    #[test]
    fn seal_then_open_round_trips_and_nonces_differ() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let secret = Secret::new("s3cret");
        let a = key.seal(&secret);
        let b = key.seal(&secret);
        assert_ne!(a, b);
        assert_eq!(key.open(&a).unwrap(), secret);
    }

    #[test]
    fn during_a_rotation_both_keys_open_and_the_new_one_seals() {
        let (old_text, new_text) = (MasterKey::generate_base64(), MasterKey::generate_base64());
        let old = MasterKey::from_base64(&old_text).unwrap();
        let rotating = MasterKey::from_base64(&new_text).unwrap().with_previous(&old_text).unwrap();
        let by_old = old.seal(&Secret::new("a"));
        assert_eq!(rotating.open(&by_old).unwrap(), Secret::new("a"));
        assert!(!rotating.is_current(&by_old));
        let by_new = rotating.seal(&Secret::new("b"));
        assert!(rotating.is_current(&by_new));
        assert_eq!(old.open(&by_new), Err(SecretError::Undecryptable), "sealed with the new key");
    }

    #[test]
    fn open_refuses_tampering_and_other_keys() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let mut sealed = key.seal(&Secret::new("s3cret"));
        assert_eq!(other.open(&sealed), Err(SecretError::Undecryptable));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(key.open(&sealed), Err(SecretError::Undecryptable));
        assert_eq!(key.open(b"short"), Err(SecretError::Undecryptable));
    }

    #[test]
    fn master_key_must_be_32_bytes() {
        assert!(MasterKey::from_base64("AAAA").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn webhook_secrets_parse_and_generate() {
        let w = WebhookSecret::generate();
        assert_eq!(w.key().len(), 32);
        let again = WebhookSecret::parse(w.as_secret().expose()).unwrap();
        assert_eq!(again.key(), w.key());
        assert!(WebhookSecret::parse("secret").is_err());
        assert!(WebhookSecret::parse("whsec_AAAA").is_err());
    }
}
