//! The header rules, in one place for every crate: which header names carry credentials (sealed
//! at rest and masked in the API for destinations, dropped from recorded rejections), which
//! names a destination's custom headers may not use (the relay's own headers, and the
//! hop-by-hop and framing headers an HTTP client sets or drops itself: refused when a
//! destination is saved, and filtered again when a request is built), and what a header name is.

/// Names compared in full (lower case) that carry credentials.
const CREDENTIAL_NAMES: &[&str] = &["authorization", "proxy-authorization"];
/// A lower-case name containing one of these carries a credential.
const CREDENTIAL_PARTS: &[&str] =
    &["token", "secret", "key", "auth", "password", "signature", "session", "cookie"];

/// Whether a header's value is a credential (case-insensitive). Errs on the side of secrecy:
/// `X-Monkey` counts too, which only hides its value.
pub fn is_credential(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    CREDENTIAL_NAMES.contains(&lower.as_str()) || CREDENTIAL_PARTS.iter().any(|part| lower.contains(part))
}

/// Headers the relay sets on every delivery.
const RELAY_OWN: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
];
const RELAY_OWN_PREFIXES: &[&str] = &["x-wap-", "x-relay-"];
/// Hop-by-hop and framing headers: the HTTP client manages them, a custom value would not be
/// sent as given (or would break the request).
const NOT_SENDABLE: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-encoding",
];
const NOT_SENDABLE_PREFIXES: &[&str] = &["proxy-"];

/// Why a destination may not set this custom header, if it may not.
pub fn custom_header_refusal(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let listed = |names: &[&str], prefixes: &[&str]| {
        names.contains(&lower.as_str()) || prefixes.iter().any(|p| lower.starts_with(p))
    };
    if !is_valid_name(name) {
        Some("not a valid header name")
    } else if listed(RELAY_OWN, RELAY_OWN_PREFIXES) {
        Some("set by the relay; cannot be overridden")
    } else if listed(NOT_SENDABLE, NOT_SENDABLE_PREFIXES) {
        Some("managed by the HTTP client; a custom value would not be sent")
    } else {
        None
    }
}

/// An HTTP field name (RFC 9110 token), at most 128 bytes.
pub fn is_valid_name(name: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty() && name.len() <= 128 && name.bytes().all(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_by_name() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Set-Cookie",
            "X-Webhook-Key",
            "X-Auth",
            "X-Api-Key",
            "X-Session-Id",
            "X-Signature",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in ["Content-Type", "X-Team", "X-Wap-Signature-Version"] {
            assert_eq!(is_credential(name), name.to_ascii_lowercase().contains("signature"), "{name}");
        }
    }

    #[test]
    fn custom_headers_that_would_not_be_sent_are_refused() {
        for name in [
            "Proxy-Authorization",
            "Keep-Alive",
            "TE",
            "Expect",
            "Content-Encoding",
            "Connection",
            "Upgrade",
            "Proxy-Foo",
        ] {
            assert!(custom_header_refusal(name).is_some_and(|r| r.contains("HTTP client")), "{name}");
        }
        for name in ["webhook-id", "X-Wap-Event-Id", "x-relay-attempt", "Host", "Content-Type", "User-Agent"]
        {
            assert!(custom_header_refusal(name).is_some_and(|r| r.contains("relay")), "{name}");
        }
        assert_eq!(custom_header_refusal("Bad Header"), Some("not a valid header name"));
        assert_eq!(custom_header_refusal("Authorization"), None);
        assert_eq!(custom_header_refusal("X-Team"), None);
    }
}
