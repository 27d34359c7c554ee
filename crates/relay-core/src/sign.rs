//! Standard Webhooks signing (https://www.standardwebhooks.com): the outbound
//! `webhook-signature` of every delivery, and the inbound `standard_webhooks` scheme.
//! The signed content is `{id}.{timestamp}.{body}`, the key is the decoded `whsec_` secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::WebhookSecret;

pub type HmacSha256 = Hmac<Sha256>;

/// A keyed HMAC-SHA256 over the given parts, fed in order.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// `v1,<base64 signature>` for one secret.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(secret.key(), &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one signature per secret, space-separated (two while a
/// secret rotation is in progress, so receivers holding either secret verify).
pub fn signature_header(secrets: &[&WebhookSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| sign(s, msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Checks a `webhook-signature` header value in constant time per candidate: true when any
/// `v1,` signature in it matches any of the secrets.
pub fn verify_header(
    secrets: &[&WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let ts = timestamp.to_string();
    let candidates: Vec<Vec<u8>> = header
        .split_ascii_whitespace()
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    let mut matched = false;
    for secret in secrets {
        for candidate in &candidates {
            let mac = hmac_sha256(secret.key(), &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            matched |= mac.verify_slice(candidate).is_ok();
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published Standard Webhooks test vector (also used by the reference libraries).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_published_vector() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(sign(&secret, MSG_ID, TIMESTAMP, BODY), EXPECTED);
        assert!(verify_header(&[&secret], MSG_ID, TIMESTAMP, BODY, EXPECTED));
    }

    #[test]
    fn verify_refuses_changes_to_any_signed_part() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert!(!verify_header(&[&secret], "msg_other", TIMESTAMP, BODY, EXPECTED));
        assert!(!verify_header(&[&secret], MSG_ID, TIMESTAMP + 1, BODY, EXPECTED));
        assert!(!verify_header(&[&secret], MSG_ID, TIMESTAMP, b"{}", EXPECTED));
        let other = WebhookSecret::generate();
        assert!(!verify_header(&[&other], MSG_ID, TIMESTAMP, BODY, EXPECTED));
        assert!(!verify_header(&[&secret], MSG_ID, TIMESTAMP, BODY, "v1,g0hM9SsE"));
        assert!(!verify_header(
            &[&secret],
            MSG_ID,
            TIMESTAMP,
            BODY,
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }

    #[test]
    fn rotation_header_carries_both_and_either_verifies() {
        let old = WebhookSecret::parse(SECRET).unwrap();
        let new = WebhookSecret::generate();
        let header = signature_header(&[&new, &old], MSG_ID, TIMESTAMP, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.ends_with(EXPECTED));
        assert!(verify_header(&[&old], MSG_ID, TIMESTAMP, BODY, &header));
        assert!(verify_header(&[&new], MSG_ID, TIMESTAMP, BODY, &header));
    }
}
