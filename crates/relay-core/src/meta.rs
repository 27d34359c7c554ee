//! The `meta_cloud_api` destination format (CONTRACT §7): a WAPing event rewritten as the body of
//! Meta's WhatsApp Cloud API `messages` webhook, and its `X-Hub-Signature-256`. The design and
//! its sources are in `docs/meta-cloud-api.md`.
//!
//! Invariants: a Meta field gets a value only when a WAPing field (or the destination's
//! [`MetaContext`]) supplies one. Otherwise the key is left out, never written as `null` and
//! never invented. The body is a pure function of the raw event bytes and the context, so every
//! retry, redelivery and preview carries identical bytes. Nothing here does I/O.
//!
//! Envelope, for every mapped event: `{"object":"whatsapp_business_account","entry":[{"id",
//! "changes":[{"value":{"messaging_product":"whatsapp","metadata":{…},…},"field":"messages"}]}]}`.
//!
//! | Meta field | ← from |
//! |---|---|
//! | `entry[0].id` | `ctx.waba_id`, else `deviceId` |
//! | `metadata.phone_number_id` | `ctx.phone_number_id`, else `deviceId` |
//! | `metadata.display_phone_number` | `ctx.display_phone_number`, else the device's own number: `digits(message.to)` on `message.received`, `digits(message.from)` on a status |
//! | `metadata` | always an object, `{}` when neither key has a value |
//!
//! `message.received` → `value.contacts[0]` (the sender) and `value.messages[0]`:
//!
//! | Meta field | ← WAPing |
//! |---|---|
//! | `contacts[0].profile.name` | `message.fromName`, else `message.pushName` |
//! | `contacts[0].wa_id`, `messages[0].from` | `digits(message.from)`: required |
//! | `messages[0].id` | `message.id` verbatim (not a `wamid.`): required |
//! | `messages[0].timestamp` | the event's `timestamp`, as Unix seconds in a string |
//! | `messages[0].type` | from `message.type`, below |
//! | `text.body` | `message.body`: required for text |
//! | `<media>.caption` (image, video, document) | `message.caption` |
//! | `<media>.filename` (document) | `message.fileName`, else `message.filename` |
//! | `<media>.mime_type` | `message.mimetype`, else `message.mimeType` |
//! | `<media>.sha256`, `.id`, `.url` | `message.sha256`, `message.mediaId`, `message.mediaUrl`, verbatim |
//! | `audio.voice` | `true` when `message.type` is `ptt` or `voice`; otherwise left out |
//! | `sticker.animated` | `message.animated` when it is a boolean |
//! | `location.{address,latitude,longitude,name,url}` | `message.location.*`; `latitude` and `longitude` are required numbers |
//! | `reaction.message_id` | `message.reaction.messageId`: required |
//! | `reaction.emoji` | `message.reaction.emoji`; left out when empty (a removed reaction, as Meta does) |
//! | `contacts[].name.formatted_name`, `.phones[].phone` | `message.contacts[].name`, `.phones[]` (strings) |
//!
//! `message.type`: absent, `text` or `chat` → `text`; `image`, `video`, `audio`, `document`,
//! `sticker`, `location`, `reaction`, `contacts` → the same; `ptt`, `voice` → `audio`. Any other
//! type is not fanned out ([`Skip::UnsupportedMessageType`]), nor is a message with
//! `fromMe: true` ([`Skip::OutgoingMessage`]: Meta carries those as `smb_message_echoes`), nor one
//! whose sender is not a phone number (a group or LID JID).
//!
//! `message.sent|delivered|read|failed` → `value.statuses[0]` (no `contacts`, as Meta):
//! `id` ← `message.id` (required), `status` ← the type's suffix, `timestamp` ← the event's,
//! `recipient_id` ← `digits(message.to)`, and on `failed` only `errors[0]` from the first of
//! `error`, `message.error` that is a non-empty string (title and message) or an object with a
//! `title` or `message` (each stands in for the other, as Meta documents them equal;
//! `error_data.details` ← its `details`).
//!
//! Left out, because WAPing has nothing true to put there: `errors[].code` and `href` (WAPing's
//! codes are not Meta's, and Meta-keyed logic such as 131047 would misfire), `conversation`,
//! `pricing`, `biz_opaque_callback_data` and `recipient_type` (no Meta billing behind a QR
//! session), `context`, `referral` and `identity_key_hash`, Meta's media `id`/`sha256` when WAPing
//! sends none, `type: "unsupported"` (its code 131051 would be ours, not Meta's). Every other
//! event type (session health, `relay.*`, unknown types) has no Meta equivalent.
//!
//! Only `message.id`, `.from` and `.body` are in WAPing's contract; every other WAPing name above
//! is an assumption, and all of them are listed once, in `field` below.
//!
//! Output: compact JSON, keys in Meta's documented order, non-ASCII written as lowercase `\uXXXX`
//! escapes (Meta signs "an escaped unicode version of the payload, with lowercase hex digits", so
//! receivers that re-escape before hashing verify too).

use hmac::Mac;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Inbound, SchemaError, parse_inbound};
use crate::sign::hmac_sha256;

mod shape;
use shape::*;

/// The header that carries [`hub_signature`].
pub const HUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// What the Meta envelope needs and WAPing does not have, from the destination's settings. Each
/// value is written verbatim when set (an empty string counts as unset); unset values fall back to
/// what the event carries, and the key is left out when that has nothing either.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MetaContext {
    /// `entry[0].id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    /// `metadata.phone_number_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// `metadata.display_phone_number` (Meta writes digits only, no `+`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
}

/// Why a body cannot be mapped at all: it is not an event the relay would have accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("not a WAPing event: {0}")]
    NotAnEvent(#[from] SchemaError),
}

/// Why an event is not fanned out to a `meta_cloud_api` destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The event type has no Meta counterpart (session health, `relay.*`, unknown types).
    NoMetaEquivalent,
    /// A `message.received` whose `message.type` is not one Meta has.
    UnsupportedMessageType,
    /// A message the device itself sent (`fromMe`).
    OutgoingMessage,
    /// A field the Meta shape requires is missing or unusable (the JSON pointer is given).
    MissingField(&'static str),
}

impl Skip {
    /// The stable code, for a preview answer.
    pub fn code(self) -> &'static str {
        match self {
            Skip::NoMetaEquivalent => "no_meta_equivalent",
            Skip::UnsupportedMessageType => "unsupported_message_type",
            Skip::OutgoingMessage => "outgoing_message",
            Skip::MissingField(_) => "missing_field",
        }
    }

    /// The field concerned, for [`Skip::MissingField`].
    pub fn pointer(self) -> Option<&'static str> {
        match self {
            Skip::MissingField(pointer) => Some(pointer),
            _ => None,
        }
    }
}

/// The outcome of mapping one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// The exact body to send.
    Body(Vec<u8>),
    /// Not fanned out, and why.
    Skipped(Skip),
}

/// The Meta-format body for a raw WAPing event, or `None` when it has no Meta equivalent.
pub fn to_meta(event_body: &[u8], ctx: &MetaContext) -> Result<Option<Vec<u8>>, MetaError> {
    Ok(match map_event(event_body, ctx)? {
        Mapping::Body(body) => Some(body),
        Mapping::Skipped(_) => None,
    })
}

/// Whether a raw WAPing event has a Meta equivalent: the answer of [`map_event`], which does not
/// depend on the destination's context (that only fills values in).
pub fn has_equivalent(event_body: &[u8]) -> bool {
    matches!(map_event(event_body, &MetaContext::default()), Ok(Mapping::Body(_)))
}

/// [`to_meta`], saying why an event is not fanned out.
pub fn map_event(event_body: &[u8], ctx: &MetaContext) -> Result<Mapping, MetaError> {
    let Inbound::Event(envelope) = parse_inbound(event_body)? else {
        return Ok(Mapping::Skipped(Skip::NoMetaEquivalent));
    };
    // parse_inbound has just accepted these bytes as JSON; this cannot fail.
    let root: Value =
        serde_json::from_slice(event_body).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
    let event = Event {
        root: &root,
        device_id: envelope.device_id.as_deref().filter(|d| !d.is_empty()),
        timestamp: envelope.timestamp.unix_timestamp().to_string(),
    };
    let mapped = match envelope.event_type.as_str() {
        "message.received" => received(&event),
        other => match STATUS_TYPES.iter().find(|(t, _)| *t == other) {
            Some((_, status)) => status_update(&event, status),
            None => Err(Skip::NoMetaEquivalent),
        },
    };
    Ok(match mapped {
        Ok((value, own_number)) => Mapping::Body(encode(&envelope_of(&event, ctx, value, own_number))),
        Err(skip) => Mapping::Skipped(skip),
    })
}

/// `X-Hub-Signature-256`: `sha256=` and the lowercase hex HMAC-SHA256 of the exact body bytes
/// with the app secret as key (Meta's "Validating payloads"). For a destination the key is the
/// UTF-8 bytes of its whole `whsec_…` signing secret (`secret.as_secret().expose().as_bytes()`),
/// the string its owner pastes where Meta code expects the app secret.
pub fn hub_signature(app_secret: &[u8], body: &[u8]) -> String {
    let mac = hmac_sha256(app_secret, &[body]);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The WAPing status event types and Meta's `status` for each.
const STATUS_TYPES: [(&str, &str); 4] = [
    ("message.sent", "sent"),
    ("message.delivered", "delivered"),
    ("message.read", "read"),
    ("message.failed", "failed"),
];

/// Where the mapping reads WAPing's payload. Only `MESSAGE_ID`, `FROM` and `BODY` are in WAPing's
/// contract; the rest are assumptions, kept here so that learning WAPing's real names is one edit.
/// Where several pointers are listed, the first with a value wins.
mod field {
    pub const MESSAGE_ID: &str = "/message/id";
    pub const FROM: &str = "/message/from";
    pub const BODY: &str = "/message/body";
    pub const TO: &str = "/message/to";
    pub const TYPE: &str = "/message/type";
    pub const FROM_ME: &str = "/message/fromMe";
    pub const SENDER_NAME: &[&str] = &["/message/fromName", "/message/pushName"];
    pub const CAPTION: &[&str] = &["/message/caption"];
    pub const FILENAME: &[&str] = &["/message/fileName", "/message/filename"];
    pub const MIME_TYPE: &[&str] = &["/message/mimetype", "/message/mimeType"];
    pub const SHA256: &[&str] = &["/message/sha256"];
    pub const MEDIA_ID: &[&str] = &["/message/mediaId"];
    pub const MEDIA_URL: &[&str] = &["/message/mediaUrl"];
    pub const ANIMATED: &str = "/message/animated";
    pub const LOCATION: &str = "/message/location";
    pub const REACTED_ID: &str = "/message/reaction/messageId";
    pub const REACTION_EMOJI: &[&str] = &["/message/reaction/emoji"];
    pub const CONTACTS: &str = "/message/contacts";
    pub const ERROR: &[&str] = &["/error", "/message/error"];
}

/// The parts of one event every rule reads.
struct Event<'a> {
    root: &'a Value,
    device_id: Option<&'a str>,
    /// Unix seconds, as Meta writes them.
    timestamp: String,
}

impl<'a> Event<'a> {
    /// The first non-empty string among `pointers`.
    fn first(&self, pointers: &[&str]) -> Option<&'a str> {
        pointers.iter().find_map(|p| non_empty(self.root.pointer(p)))
    }

    fn str(&self, pointer: &str) -> Option<&'a str> {
        non_empty(self.root.pointer(pointer))
    }
}

fn non_empty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A phone number as Meta writes it (E.164 digits, no `+`), from a number or a personal JID.
/// Group (`@g.us`), LID and other JIDs have none.
fn digits(text: &str) -> Option<String> {
    let number = match text.split_once('@') {
        None => text,
        Some((user, "s.whatsapp.net" | "c.us")) => user,
        Some(_) => return None,
    };
    let number = number.strip_prefix('+').unwrap_or(number);
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    ((1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// What goes into `value` besides the metadata, and the device's own number if the event says.
type Mapped<'a> = Result<(Payload<'a>, Option<String>), Skip>;

fn received<'a>(event: &Event<'a>) -> Mapped<'a> {
    if event.root.pointer(field::FROM_ME) == Some(&Value::Bool(true)) {
        return Err(Skip::OutgoingMessage);
    }
    let kind = match event.root.pointer(field::TYPE) {
        None | Some(Value::Null) => "text",
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(Skip::UnsupportedMessageType),
    };
    let id = event.str(field::MESSAGE_ID).ok_or(Skip::MissingField(field::MESSAGE_ID))?;
    let content = content(event, kind)?;
    let from = event.str(field::FROM).and_then(digits).ok_or(Skip::MissingField(field::FROM))?;
    let profile = event.first(field::SENDER_NAME).map(|name| Profile { name });
    let message =
        Message { from: from.clone(), id, timestamp: event.timestamp.clone(), kind: content.kind(), content };
    let own_number = event.str(field::TO).and_then(digits);
    Ok((Payload::Message { contact: Contact { profile, wa_id: from }, message }, own_number))
}

fn content<'a>(event: &Event<'a>, kind: &str) -> Result<Content<'a>, Skip> {
    let media = |caption: bool, filename: bool, voice: Option<bool>, animated: Option<bool>| Media {
        caption: if caption { event.first(field::CAPTION) } else { None },
        filename: if filename { event.first(field::FILENAME) } else { None },
        mime_type: event.first(field::MIME_TYPE),
        sha256: event.first(field::SHA256),
        id: event.first(field::MEDIA_ID),
        url: event.first(field::MEDIA_URL),
        voice,
        animated,
    };
    Ok(match kind {
        "text" | "chat" => {
            Content::Text { body: event.str(field::BODY).ok_or(Skip::MissingField(field::BODY))? }
        }
        "image" => Content::Image(media(true, false, None, None)),
        "video" => Content::Video(media(true, false, None, None)),
        "document" => Content::Document(media(true, true, None, None)),
        "audio" => Content::Audio(media(false, false, None, None)),
        "ptt" | "voice" => Content::Audio(media(false, false, Some(true), None)),
        "sticker" => {
            let animated = event.root.pointer(field::ANIMATED).and_then(Value::as_bool);
            Content::Sticker(media(false, false, None, animated))
        }
        "location" => Content::Location(location(event)?),
        "reaction" => Content::Reaction(Reaction {
            message_id: event.str(field::REACTED_ID).ok_or(Skip::MissingField(field::REACTED_ID))?,
            emoji: event.first(field::REACTION_EMOJI),
        }),
        "contacts" => Content::Contacts(shared_contacts(event)?),
        _ => return Err(Skip::UnsupportedMessageType),
    })
}

fn location<'a>(event: &Event<'a>) -> Result<Location<'a>, Skip> {
    let missing = Skip::MissingField(field::LOCATION);
    let place = event.root.pointer(field::LOCATION).filter(|v| v.is_object()).ok_or(missing)?;
    let number = |key: &str| place.get(key).and_then(Value::as_number).cloned().ok_or(missing);
    let text = |key: &str| non_empty(place.get(key));
    Ok(Location {
        address: text("address"),
        latitude: number("latitude")?,
        longitude: number("longitude")?,
        name: text("name"),
        url: text("url"),
    })
}

fn shared_contacts<'a>(event: &Event<'a>) -> Result<Vec<SharedContact<'a>>, Skip> {
    let cards = event.root.pointer(field::CONTACTS).and_then(Value::as_array);
    let contacts: Vec<_> = cards
        .into_iter()
        .flatten()
        .filter_map(|card| {
            let name = non_empty(card.get("name")).map(|formatted_name| Name { formatted_name });
            let phones: Vec<_> = card
                .get("phones")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|phone| non_empty(Some(phone)).map(|phone| Phone { phone }))
                .collect();
            let phones = (!phones.is_empty()).then_some(phones);
            (name.is_some() || phones.is_some()).then_some(SharedContact { name, phones })
        })
        .collect();
    if contacts.is_empty() {
        return Err(Skip::MissingField(field::CONTACTS));
    }
    Ok(contacts)
}

fn status_update<'a>(event: &Event<'a>, status: &'static str) -> Mapped<'a> {
    let id = event.str(field::MESSAGE_ID).ok_or(Skip::MissingField(field::MESSAGE_ID))?;
    let errors = if status == "failed" { failure(event).map(|e| [e]) } else { None };
    let recipient_id = event.str(field::TO).and_then(digits);
    let own_number = event.str(field::FROM).and_then(digits);
    let status = Status { id, status, timestamp: event.timestamp.clone(), recipient_id, errors };
    Ok((Payload::Status(status), own_number))
}

fn failure<'a>(event: &Event<'a>) -> Option<StatusError<'a>> {
    field::ERROR.iter().find_map(|pointer| match event.root.pointer(pointer)? {
        Value::String(text) if !text.is_empty() => {
            Some(StatusError { title: text, message: text, error_data: None })
        }
        error @ Value::Object(_) => {
            let (title, message) = (non_empty(error.get("title")), non_empty(error.get("message")));
            let error_data = non_empty(error.get("details")).map(|details| ErrorData { details });
            Some(StatusError { title: title.or(message)?, message: message.or(title)?, error_data })
        }
        _ => None,
    })
}

fn envelope_of<'a>(
    event: &Event<'a>,
    ctx: &'a MetaContext,
    payload: Payload<'a>,
    own_number: Option<String>,
) -> Webhook<'a> {
    let set = |value: &'a Option<String>| value.as_deref().filter(|v| !v.is_empty());
    let metadata = Metadata {
        display_phone_number: set(&ctx.display_phone_number).map(str::to_owned).or(own_number),
        phone_number_id: set(&ctx.phone_number_id).or(event.device_id),
    };
    let (contacts, messages, statuses) = match payload {
        Payload::Message { contact, message } => (Some([contact]), Some([message]), None),
        Payload::Status(status) => (None, None, Some([status])),
    };
    let value = ChangeValue { messaging_product: "whatsapp", metadata, contacts, messages, statuses };
    Webhook {
        object: "whatsapp_business_account",
        entry: [Entry {
            id: set(&ctx.waba_id).or(event.device_id),
            changes: [Change { value, field: "messages" }],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_keep_phone_numbers_and_refuse_other_jids() {
        assert_eq!(digits("+15559876543").as_deref(), Some("15559876543"));
        assert_eq!(digits("+1 (555) 987-6543").as_deref(), Some("15559876543"));
        assert_eq!(digits("5511999990000@s.whatsapp.net").as_deref(), Some("5511999990000"));
        assert_eq!(digits("5511999990000@c.us").as_deref(), Some("5511999990000"));
        assert_eq!(digits("120363025246125486@g.us"), None);
        assert_eq!(digits("82827746844893@lid"), None);
        assert_eq!(digits("1234567890123456"), None);
        assert_eq!(digits("+"), None);
        assert_eq!(digits("++1555"), None);
        assert_eq!(digits("15551234567:12@s.whatsapp.net"), None);
    }

    #[test]
    fn non_ascii_becomes_lowercase_utf16_escapes() {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, AsciiJson);
        "Jos\u{e9} \u{1f44d} \"q\"\n\u{2028}".serialize(&mut serializer).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#""Jos\u00e9 \ud83d\udc4d \"q\"\n\u2028""#);
    }
}
