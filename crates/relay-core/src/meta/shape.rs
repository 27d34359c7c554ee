//! Meta's side of the `meta_cloud_api` format: the webhook body's structs, in Meta's documented
//! key order with absent fields left out, and their encoding (compact JSON, ASCII only, as Meta
//! sends). What goes into them, field by field, is the mapping in the parent module.

use std::io;

use serde::Serialize;
use serde_json::Number;

/// Compact JSON, ASCII only.
pub(super) fn encode(webhook: &Webhook<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, AsciiJson);
    // Plain structs with string keys, written to a Vec: serde_json has no way to fail here.
    webhook.serialize(&mut serializer).expect("a Meta webhook body always serialises");
    out
}

/// serde_json's compact output with every non-ASCII character escaped as lowercase `\uXXXX`
/// (UTF-16 code units, so characters above U+FFFF become a surrogate pair), as Meta sends.
pub(super) struct AsciiJson;

impl serde_json::ser::Formatter for AsciiJson {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut plain = 0;
        for (at, c) in fragment.char_indices().filter(|(_, c)| !c.is_ascii()) {
            writer.write_all(&fragment.as_bytes()[plain..at])?;
            for unit in c.encode_utf16(&mut [0; 2]) {
                write!(writer, "\\u{unit:04x}")?;
            }
            plain = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[plain..])
    }
}

// Meta's shape. Field order is Meta's documented key order; `None` fields are left out.

#[derive(Serialize)]
pub(super) struct Webhook<'a> {
    pub(super) object: &'static str,
    pub(super) entry: [Entry<'a>; 1],
}

#[derive(Serialize)]
pub(super) struct Entry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'a str>,
    pub(super) changes: [Change<'a>; 1],
}

#[derive(Serialize)]
pub(super) struct Change<'a> {
    pub(super) value: ChangeValue<'a>,
    pub(super) field: &'static str,
}

#[derive(Serialize)]
pub(super) struct ChangeValue<'a> {
    pub(super) messaging_product: &'static str,
    pub(super) metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) contacts: Option<[Contact<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) messages: Option<[Message<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) statuses: Option<[Status<'a>; 1]>,
}

#[derive(Serialize)]
pub(super) struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) display_phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) phone_number_id: Option<&'a str>,
}

pub(super) enum Payload<'a> {
    Message { contact: Contact<'a>, message: Message<'a> },
    Status(Status<'a>),
}

#[derive(Serialize)]
pub(super) struct Contact<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) profile: Option<Profile<'a>>,
    pub(super) wa_id: String,
}

#[derive(Serialize)]
pub(super) struct Profile<'a> {
    pub(super) name: &'a str,
}

#[derive(Serialize)]
pub(super) struct Message<'a> {
    pub(super) from: String,
    pub(super) id: &'a str,
    pub(super) timestamp: String,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    /// Written as one key named after the type: `"text":{…}`, `"image":{…}`, …
    #[serde(flatten)]
    pub(super) content: Content<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Content<'a> {
    Text { body: &'a str },
    Image(Media<'a>),
    Video(Media<'a>),
    Audio(Media<'a>),
    Document(Media<'a>),
    Sticker(Media<'a>),
    Location(Location<'a>),
    Reaction(Reaction<'a>),
    Contacts(Vec<SharedContact<'a>>),
}

impl Content<'_> {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Content::Text { .. } => "text",
            Content::Image(_) => "image",
            Content::Video(_) => "video",
            Content::Audio(_) => "audio",
            Content::Document(_) => "document",
            Content::Sticker(_) => "sticker",
            Content::Location(_) => "location",
            Content::Reaction(_) => "reaction",
            Content::Contacts(_) => "contacts",
        }
    }
}

#[derive(Serialize)]
pub(super) struct Media<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) caption: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) filename: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mime_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) voice: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) animated: Option<bool>,
}

#[derive(Serialize)]
pub(super) struct Location<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) address: Option<&'a str>,
    pub(super) latitude: Number,
    pub(super) longitude: Number,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) url: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct Reaction<'a> {
    pub(super) message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) emoji: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct SharedContact<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<Name<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) phones: Option<Vec<Phone<'a>>>,
}

#[derive(Serialize)]
pub(super) struct Name<'a> {
    pub(super) formatted_name: &'a str,
}

#[derive(Serialize)]
pub(super) struct Phone<'a> {
    pub(super) phone: &'a str,
}

#[derive(Serialize)]
pub(super) struct Status<'a> {
    pub(super) id: &'a str,
    pub(super) status: &'static str,
    pub(super) timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recipient_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) errors: Option<[StatusError<'a>; 1]>,
}

#[derive(Serialize)]
pub(super) struct StatusError<'a> {
    pub(super) title: &'a str,
    pub(super) message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error_data: Option<ErrorData<'a>>,
}

#[derive(Serialize)]
pub(super) struct ErrorData<'a> {
    pub(super) details: &'a str,
}
