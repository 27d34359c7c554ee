//! The `meta_cloud_api` format through its public API: golden files (`tests/meta/<case>.wap.json`
//! in, `<case>.meta.json` out, `null` for "not fanned out", an optional `<case>.ctx.json` for the
//! destination's [`MetaContext`]), the exact bytes of the design document's examples, the reasons
//! for not fanning out, and `X-Hub-Signature-256` checked the way Meta tells receivers to.
//!
//! Golden files are compared key order included. After an intended change of the mapping,
//! `META_BLESS=1 cargo test -p relay-core --test meta_format` rewrites them; review the diff.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use relay_core::meta::{self, Mapping, MetaContext, MetaError, Skip, hub_signature, map_event, to_meta};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Every golden case. A file in `tests/meta/` that is not listed here fails the test, and so does
/// a listed case without its files.
const CASES: &[&str] = &[
    "text",
    "text_minimal",
    "text_with_context",
    "image",
    "image_bare",
    "document",
    "voice_note",
    "sticker",
    "location",
    "location_bare",
    "reaction",
    "reaction_removed",
    "contacts",
    "status_sent",
    "status_delivered",
    "status_read",
    "status_failed",
    "status_failed_bare",
    "session_disconnected",
    "relay_destination_disabled",
    "outgoing_message",
    "group_message",
    "unsupported_type",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/meta")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn wap(case: &str) -> Vec<u8> {
    let body = read(&dir().join(format!("{case}.wap.json")));
    body.strip_suffix(b"\n").map(<[u8]>::to_vec).unwrap_or(body)
}

fn ctx(case: &str) -> MetaContext {
    let path = dir().join(format!("{case}.ctx.json"));
    if !path.exists() {
        return MetaContext::default();
    }
    serde_json::from_slice(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mapped(case: &str) -> Option<Vec<u8>> {
    to_meta(&wap(case), &ctx(case)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

#[test]
fn golden_cases() {
    let bless = std::env::var_os("META_BLESS").is_some();
    let mut failures = Vec::new();
    for case in CASES {
        let expected_path = dir().join(format!("{case}.meta.json"));
        let actual = mapped(case).map(|body| Node::parse(&body));
        if bless {
            let text = match &actual {
                Some(node) => serde_json::to_string_pretty(node).unwrap(),
                None => "null".to_owned(),
            };
            std::fs::write(&expected_path, text + "\n").unwrap();
            continue;
        }
        let expected = Node::parse(&read(&expected_path));
        let expected = (expected != Node::Null).then_some(expected);
        if actual != expected {
            failures.push(format!("{case}:\n  expected {expected:?}\n  actual   {actual:?}"));
        }
    }
    assert!(failures.is_empty(), "golden files differ:\n{}", failures.join("\n"));
}

#[test]
fn the_case_list_and_the_files_agree() {
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let case = [".wap.json", ".meta.json", ".ctx.json"].iter().find_map(|s| name.strip_suffix(s));
        on_disk.insert(case.unwrap_or_else(|| panic!("unexpected file tests/meta/{name}")).to_owned());
    }
    let listed: BTreeSet<_> = CASES.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(on_disk, listed);
}

/// Every body is compact JSON in ASCII (non-ASCII as lowercase `\uXXXX`), with no `null`: an
/// absent value is an absent key.
#[test]
fn bodies_are_compact_ascii_without_nulls() {
    for case in CASES {
        let Some(body) = mapped(case) else { continue };
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.is_ascii(), "{case}: {text}");
        let node = Node::parse(&body);
        assert!(!node.has_null(), "{case}: {text}");
        let expected = escape_non_ascii(&serde_json::to_string(&node).unwrap());
        assert_eq!(text, expected, "{case}: not compact or escaped differently");
    }
}

/// The "before / after" examples of docs/meta-cloud-api.md §4, byte for byte.
#[test]
fn the_design_examples_byte_for_byte() {
    let text = r#"{"object":"whatsapp_business_account","entry":[{"id":"dev_123","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"dev_123"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"15559876543"}],"messages":[{"from":"15559876543","id":"msg_in_456","timestamp":"1775217600","type":"text","text":{"body":"Hi"}}]},"field":"messages"}]}]}"#;
    assert_eq!(String::from_utf8(mapped("text").unwrap()).unwrap(), text);
    let delivered = r#"{"object":"whatsapp_business_account","entry":[{"id":"dev_123","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"dev_123"},"statuses":[{"id":"msg_out_789","status":"delivered","timestamp":"1775217605","recipient_id":"15559876543"}]},"field":"messages"}]}]}"#;
    assert_eq!(String::from_utf8(mapped("status_delivered").unwrap()).unwrap(), delivered);
    let emoji = String::from_utf8(mapped("reaction").unwrap()).unwrap();
    assert!(emoji.contains(r#""reaction":{"message_id":"msg_out_789","emoji":"\ud83d\udc4d"}"#), "{emoji}");
}

#[test]
fn the_same_event_always_gives_the_same_bytes() {
    for case in CASES {
        assert_eq!(mapped(case), mapped(case), "{case}");
    }
}

#[test]
fn context_values_win_and_empty_ones_count_as_unset() {
    let body = wap("text");
    let ctx = MetaContext {
        waba_id: Some("waba_1".into()),
        phone_number_id: Some(String::new()),
        display_phone_number: Some("15550783881".into()),
    };
    let value: Value = serde_json::from_slice(&to_meta(&body, &ctx).unwrap().unwrap()).unwrap();
    assert_eq!(value["entry"][0]["id"], "waba_1");
    let metadata = &value["entry"][0]["changes"][0]["value"]["metadata"];
    assert_eq!(
        metadata,
        &serde_json::json!({"display_phone_number": "15550783881", "phone_number_id": "dev_123"})
    );
}

#[test]
fn reasons_for_not_fanning_out() {
    let reason = |case: &str| match map_event(&wap(case), &ctx(case)).unwrap() {
        Mapping::Skipped(skip) => (skip.code(), skip.pointer()),
        Mapping::Body(_) => panic!("{case} was mapped"),
    };
    assert_eq!(reason("session_disconnected"), ("no_meta_equivalent", None));
    assert_eq!(reason("relay_destination_disabled"), ("no_meta_equivalent", None));
    assert_eq!(reason("outgoing_message"), ("outgoing_message", None));
    assert_eq!(reason("group_message"), ("missing_field", Some("/message/from")));
    assert_eq!(reason("unsupported_type"), ("unsupported_message_type", None));

    let skip = |message: &str| {
        let body = format!(
            r#"{{"eventId":"e","type":"message.received","timestamp":"2026-04-03T12:00:00Z","message":{message}}}"#
        );
        match map_event(body.as_bytes(), &MetaContext::default()).unwrap() {
            Mapping::Skipped(skip) => skip,
            Mapping::Body(b) => panic!("{message} was mapped: {}", String::from_utf8_lossy(&b)),
        }
    };
    assert_eq!(skip(r#"{"id":"m","from":"+1555"}"#), Skip::MissingField("/message/body"));
    assert_eq!(skip(r#"{"id":"m","from":"+1555","body":""}"#), Skip::MissingField("/message/body"));
    assert_eq!(skip(r#"{"from":"+1555","body":"Hi"}"#), Skip::MissingField("/message/id"));
    assert_eq!(skip(r#"{"id":"m","from":"1@lid","body":"Hi"}"#), Skip::MissingField("/message/from"));
    assert_eq!(skip(r#"{"id":"m","from":"+1555","body":"Hi","type":7}"#), Skip::UnsupportedMessageType);
    let no_latitude =
        r#"{"id":"m","from":"+1555","type":"location","location":{"latitude":"1","longitude":2}}"#;
    assert_eq!(skip(no_latitude), Skip::MissingField("/message/location"));
    let no_target = r#"{"id":"m","from":"+1555","type":"reaction","reaction":{"emoji":"x"}}"#;
    assert_eq!(skip(no_target), Skip::MissingField("/message/reaction/messageId"));
    let no_card = r#"{"id":"m","from":"+1555","type":"contacts","contacts":[{"phones":[]}]}"#;
    assert_eq!(skip(no_card), Skip::MissingField("/message/contacts"));
    let status = br#"{"eventId":"e","type":"message.read","timestamp":"2026-04-03T12:00:00Z","message":{}}"#;
    assert_eq!(
        map_event(status, &MetaContext::default()).unwrap(),
        Mapping::Skipped(Skip::MissingField("/message/id"))
    );
}

#[test]
fn bodies_that_are_not_events_are_errors() {
    let none = MetaContext::default();
    assert!(matches!(to_meta(b"{nope", &none), Err(MetaError::NotAnEvent(_))));
    assert!(matches!(to_meta(br#"{"type":"message.read"}"#, &none), Err(MetaError::NotAnEvent(_))));
    let verification = br#"{"type":"url_verification","challenge":"c"}"#;
    assert_eq!(to_meta(verification, &none), Ok(None));
}

#[test]
fn the_context_reads_its_settings_json() {
    let ctx: MetaContext = serde_json::from_str(r#"{"phone_number_id":"1065"}"#).unwrap();
    assert_eq!(ctx, MetaContext { phone_number_id: Some("1065".into()), ..MetaContext::default() });
    assert!(serde_json::from_str::<MetaContext>(r#"{"phone_number":"1"}"#).is_err());
    assert_eq!(serde_json::to_string(&MetaContext::default()).unwrap(), "{}");
}

// X-Hub-Signature-256.

/// What Meta's "Validating payloads" tells a receiver to do: HMAC-SHA256 over the raw body with
/// the app secret, compared with everything after `sha256=`, in constant time.
fn meta_receiver_accepts(app_secret: &str, raw_body: &[u8], header: &str) -> bool {
    let Some(received) = header.strip_prefix("sha256=") else { return false };
    let Ok(received) = hex::decode(received) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).unwrap();
    mac.update(raw_body);
    mac.verify_slice(&received).is_ok()
}

/// The other common receiver: expected lowercase hex string, compared to the header's in constant
/// time (`hmac.compare_digest(expected, header[7:])`, `hash_equals`).
fn hex_string_receiver_accepts(app_secret: &str, raw_body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).unwrap();
    mac.update(raw_body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    expected.as_bytes().ct_eq(header.as_bytes()).into()
}

/// The signing secret of docs/meta-cloud-api.md §5 (also the Standard Webhooks test secret).
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn hub_signature_matches_the_published_vector() {
    // Meta publishes no test vector. GitHub's documentation publishes one for the same header,
    // `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.
    let header = hub_signature(b"It's a Secret to Everybody", b"Hello, World!");
    assert_eq!(header, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

#[test]
fn hub_signature_of_a_mapped_body_matches_a_pinned_vector() {
    // Computed outside Rust over the bytes of `the_design_examples_byte_for_byte`:
    // printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    let body = mapped("status_delivered").unwrap();
    assert_eq!(
        hub_signature(SIGNING_SECRET.as_bytes(), &body),
        "sha256=4754905f5c95f0d71c839b5287700ff0a7c0ff724f5a8204f384a538b11dbb47"
    );
}

#[test]
fn meta_receivers_verify_every_mapped_body() {
    for case in CASES {
        let Some(body) = mapped(case) else { continue };
        let header = hub_signature(SIGNING_SECRET.as_bytes(), &body);
        assert_eq!(header.len(), "sha256=".len() + 64, "{case}");
        assert!(header[7..].bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{case}: {header}");
        assert!(meta_receiver_accepts(SIGNING_SECRET, &body, &header), "{case}");
        assert!(hex_string_receiver_accepts(SIGNING_SECRET, &body, &header), "{case}");

        let mut tampered = body.clone();
        tampered[body.len() / 2] ^= 1;
        assert!(!meta_receiver_accepts(SIGNING_SECRET, &tampered, &header), "{case}");
        let other = "whsec_TUZLUTlyOEdLWXFyVHdqVVBEOElMUFpJbzJMYUxhU3c=";
        assert!(!meta_receiver_accepts(other, &body, &header), "{case}");
        assert!(!hex_string_receiver_accepts(SIGNING_SECRET, &body, &header.to_uppercase()), "{case}");
    }
    assert_eq!(meta::HUB_SIGNATURE_HEADER, "x-hub-signature-256");
}

// Properties.

/// A JSON value of any shape, with strings that look like the values the mapping reads.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        (-200.0f64..200.0).prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "+15559876543",
            "1@g.us",
            "1@c.us",
            "text",
            "image",
            "ptt",
            "location",
            "reaction",
            "contacts",
            "chat",
            "\u{1f44d}",
            "Jos\u{e9}",
            "null",
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "id",
        "from",
        "to",
        "body",
        "type",
        "fromMe",
        "fromName",
        "pushName",
        "caption",
        "fileName",
        "mimetype",
        "sha256",
        "mediaId",
        "mediaUrl",
        "animated",
        "location",
        "latitude",
        "longitude",
        "name",
        "address",
        "url",
        "reaction",
        "messageId",
        "emoji",
        "contacts",
        "phones",
        "error",
        "title",
        "message",
        "details",
    ])
    .prop_map(str::to_owned)
}

proptest! {
    #[test]
    fn any_event_maps_to_ascii_json_without_nulls_or_to_a_reason(
        kind in prop::sample::select(vec![
            "message.received", "message.sent", "message.delivered", "message.read", "message.failed",
            "session.connected",
        ]),
        message in prop::collection::btree_map(field_name(), any_json(), 0..10),
        error in any_json(),
        device in proptest::option::of("[a-z_0-9]{0,8}"),
    ) {
        let event = serde_json::json!({
            "eventId": "e", "type": kind, "timestamp": "2026-04-03T12:00:00.5Z", "deviceId": device,
            "message": Value::Object(message.into_iter().collect()), "error": error,
        });
        let body = serde_json::to_vec(&event).unwrap();
        if let Some(out) = to_meta(&body, &MetaContext::default()).unwrap() {
            prop_assert!(out.is_ascii());
            let node = Node::parse(&out);
            prop_assert!(!node.has_null());
            let expected = escape_non_ascii(&serde_json::to_string(&node).unwrap());
            prop_assert_eq!(expected.as_bytes(), &out[..]);
        }
    }
}

// Test support: JSON with its key order kept (serde_json's `Value` sorts keys here).

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    fn parse(bytes: &[u8]) -> Node {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let node = de.deserialize_any(NodeVisitor).unwrap_or_else(|e| panic!("{e}"));
        de.end().unwrap();
        node
    }

    fn has_null(&self) -> bool {
        match self {
            Node::Null => true,
            Node::Array(items) => items.iter().any(Node::has_null),
            Node::Object(entries) => entries.iter().any(|(_, v)| v.has_null()),
            _ => false,
        }
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Node, E> {
        Number::from_f64(v).map(Node::Number).ok_or_else(|| E::custom("not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed)? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value_seed(Seed)?));
        }
        Ok(Node::Object(entries))
    }
}

struct Seed;

impl<'de> serde::de::DeserializeSeed<'de> for Seed {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

impl serde::Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Number(n) => n.serialize(s),
            Node::String(text) => s.serialize_str(text),
            Node::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// Meta's escaping, written independently of the module: each UTF-16 unit of a non-ASCII
/// character as `\uXXXX`, lowercase.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}
