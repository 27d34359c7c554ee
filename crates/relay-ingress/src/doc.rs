//! The OpenAPI description of the ingress routes (CONTRACT §3), kept on the handlers themselves
//! (`ingest::post_ingest`, `handshake::get_handshake`) so a new answer cannot go undocumented; the
//! admin crate merges [`IngestDoc`] into the one document of the whole HTTP surface. Only the
//! schemas of the request shapes live here.

use serde::Serialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// A WAPing event. Only the envelope is checked; every other field is stored and forwarded as is.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"eventId":"evt_123","type":"message.received","timestamp":"2026-04-03T12:00:00Z",
    "deviceId":"dev_123","message":{"id":"msg_in_456","from":"+15559876543","body":"Hi"}}))]
pub struct WapEvent {
    /// 1 to 256 characters; dedupe key per source.
    pub event_id: String,
    /// 1 to 128 characters of `[A-Za-z0-9_.:-]`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339.
    pub timestamp: String,
    /// At most 256 characters.
    pub device_id: Option<String>,
}

/// Answer to a signed `{"type":"url_verification","challenge":C}` POST.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChallengeAck {
    pub challenge: String,
}

/// The subscription handshake (either spelling).
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HandshakeQuery {
    #[param(rename = "hub.mode")]
    pub hub_mode: Option<String>,
    #[param(rename = "hub.verify_token")]
    pub hub_verify_token: Option<String>,
    #[param(rename = "hub.challenge")]
    pub hub_challenge: Option<String>,
    pub verify_token: Option<String>,
    pub challenge: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    paths(crate::ingest::post_ingest, crate::handshake::get_handshake),
    components(schemas(crate::ingest::IngestAck, ChallengeAck, WapEvent))
)]
pub struct IngestDoc;
