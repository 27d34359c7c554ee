use super::*;
use crate::sign::sign;
use hmac::Mac;
use proptest::prelude::*;
use std::collections::HashMap;

const BODY: &[u8] = br#"{"eventId":"evt_1","type":"message.received","timestamp":"2026-04-03T12:00:00Z"}"#;
const NOW: i64 = 1_775_217_600;

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    hex::encode(hmac_sha256(key.as_bytes(), parts).finalize().into_bytes())
}

fn check(v: &Verification, secrets: &[&str], headers: &[(&str, &str)]) -> Result<(), SignatureError> {
    let map: HashMap<String, String> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())).collect();
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    let refs: Vec<&Secret> = secrets.iter().collect();
    verify(v, &refs, |name| map.get(name).map(String::as_str), BODY, NOW)
}

#[test]
fn hmac_accepts_prefixed_bare_and_upper_case_hex() {
    let v = Verification::default();
    let sig = hmac_hex("topsecret", &[BODY]);
    assert_eq!(check(&v, &["topsecret"], &[("X-Wap-Signature", &format!("sha256={sig}"))]), Ok(()));
    assert_eq!(check(&v, &["topsecret"], &[("X-Wap-Signature", &sig)]), Ok(()));
    assert_eq!(check(&v, &["topsecret"], &[("X-Wap-Signature", &sig.to_uppercase())]), Ok(()));
}

#[test]
fn hmac_refuses_wrong_secret_truncation_missing_and_garbage() {
    let v = Verification::default();
    let sig = hmac_hex("topsecret", &[BODY]);
    assert_eq!(check(&v, &["othersecret"], &[("X-Wap-Signature", &sig)]), Err(SignatureError::Mismatch));
    assert_eq!(check(&v, &["topsecret"], &[("X-Wap-Signature", &sig[..40])]), Err(SignatureError::Mismatch));
    assert!(matches!(check(&v, &["topsecret"], &[]), Err(SignatureError::Missing(_))));
    assert!(matches!(
        check(&v, &["topsecret"], &[("X-Wap-Signature", "sha256=zz")]),
        Err(SignatureError::Malformed(_))
    ));
}

#[test]
fn hmac_header_name_is_configurable_and_rotation_accepts_either_secret() {
    let v = Verification::HmacSha256 { header: "X-Custom-Sig".into() };
    let old = hmac_hex("old-secret", &[BODY]);
    let new = hmac_hex("new-secret", &[BODY]);
    assert_eq!(check(&v, &["new-secret", "old-secret"], &[("x-custom-sig", &old)]), Ok(()));
    assert_eq!(check(&v, &["new-secret", "old-secret"], &[("x-custom-sig", &new)]), Ok(()));
    assert!(check(&v, &["new-secret"], &[("X-Wap-Signature", &new)]).is_err());
}

#[test]
fn timestamped_checks_signature_and_tolerance() {
    let v = Verification::HmacSha256Timestamped {
        header: DEFAULT_SIGNATURE_HEADER.into(),
        tolerance_seconds: 300,
    };
    let t = NOW - 10;
    let sig = hmac_hex("topsecret", &[t.to_string().as_bytes(), b".", BODY]);
    let good = format!("t={t},v1={sig}");
    assert_eq!(check(&v, &["topsecret"], &[("X-Wap-Signature", &good)]), Ok(()));
    let two = format!("t={t},v1={},v1={sig}", "ab".repeat(32));
    assert_eq!(check(&v, &["topsecret"], &[("X-Wap-Signature", &two)]), Ok(()));
    let old_t = NOW - 301;
    let old_sig = hmac_hex("topsecret", &[old_t.to_string().as_bytes(), b".", BODY]);
    let expired = format!("t={old_t},v1={old_sig}");
    assert_eq!(
        check(&v, &["topsecret"], &[("X-Wap-Signature", &expired)]),
        Err(SignatureError::Expired(300))
    );
    let moved = format!("t={},v1={sig}", t + 1);
    assert_eq!(check(&v, &["topsecret"], &[("X-Wap-Signature", &moved)]), Err(SignatureError::Mismatch));
    assert!(matches!(
        check(&v, &["topsecret"], &[("X-Wap-Signature", "v1=abcd")]),
        Err(SignatureError::Malformed(_))
    ));
}

#[test]
fn standard_webhooks_scheme_verifies_and_expires() {
    let v = Verification::StandardWebhooks { tolerance_seconds: 300 };
    let secret = WebhookSecret::generate();
    let sig = sign(&secret, "msg_1", NOW, BODY);
    let ts = NOW.to_string();
    let headers =
        [("webhook-id", "msg_1"), ("webhook-timestamp", ts.as_str()), ("webhook-signature", sig.as_str())];
    assert_eq!(check(&v, &[secret.as_secret().expose()], &headers), Ok(()));
    let other = WebhookSecret::generate();
    assert_eq!(check(&v, &[other.as_secret().expose()], &headers), Err(SignatureError::Mismatch));
    let stale = (NOW - 1000).to_string();
    let stale_sig = sign(&secret, "msg_1", NOW - 1000, BODY);
    let headers = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", stale.as_str()),
        ("webhook-signature", stale_sig.as_str()),
    ];
    assert_eq!(check(&v, &[secret.as_secret().expose()], &headers), Err(SignatureError::Expired(300)));
    assert!(matches!(check(&v, &[secret.as_secret().expose()], &[]), Err(SignatureError::Missing(_))));
}

#[test]
fn none_accepts_anything() {
    assert_eq!(check(&Verification::None, &[], &[]), Ok(()));
}

#[test]
fn verification_json_defaults_and_validation() {
    let v: Verification = serde_json::from_str(r#"{"scheme":"hmac_sha256_timestamped"}"#).unwrap();
    assert_eq!(
        v,
        Verification::HmacSha256Timestamped {
            header: DEFAULT_SIGNATURE_HEADER.into(),
            tolerance_seconds: 300
        }
    );
    assert!(serde_json::from_str::<Verification>(r#"{"scheme":"md5"}"#).is_err());
    let bad = Verification::HmacSha256 { header: "bad header".into() };
    assert_eq!(bad.validate(Some(&Secret::new("longenough"))), Err(ConfigError::BadHeader));
    assert_eq!(Verification::default().validate(None), Err(ConfigError::MissingSecret));
    assert_eq!(
        Verification::default().validate(Some(&Secret::new("short"))),
        Err(ConfigError::BadSecretLength)
    );
    let sw = Verification::StandardWebhooks { tolerance_seconds: 300 };
    assert_eq!(sw.validate(Some(&Secret::new("not-a-whsec-secret"))), Err(ConfigError::BadWebhookSecret));
    assert_eq!(Verification::None.validate(None), Ok(()));
}

proptest! {
    #[test]
    fn timestamped_parser_never_panics(value in ".{0,200}") {
        let _ = parse_timestamped(&value);
    }

    #[test]
    fn verify_never_panics_on_any_header(value in ".{0,200}", ts in ".{0,30}") {
        for v in [
            Verification::default(),
            Verification::HmacSha256Timestamped { header: DEFAULT_SIGNATURE_HEADER.into(), tolerance_seconds: 300 },
            Verification::StandardWebhooks { tolerance_seconds: 300 },
        ] {
            let headers = [("X-Wap-Signature", value.as_str()), ("webhook-id", "m"), ("webhook-timestamp", ts.as_str()), ("webhook-signature", value.as_str())];
            let _ = check(&v, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], &headers);
        }
    }
}
