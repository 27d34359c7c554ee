//! OpenAPI documentation of the ingress routes (CONTRACT §3). The handlers live in relay-ingress;
//! these stubs only carry the `#[utoipa::path]` annotations so the one document describes the whole
//! HTTP surface. They are never routed.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Answer to an accepted event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IngestAck {
    /// Always true.
    pub received: bool,
    /// Present and true when this source already stored this `eventId`; nothing new is delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

/// Answer to a signed `{"type":"url_verification","challenge":C}` POST.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChallengeAck {
    pub challenge: String,
}

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

/// Receives one WAPing event. A 2xx is sent only after the event and its deliveries are durably
/// stored. Refusals with a known source are recorded as rejections.
#[utoipa::path(post, path = "/v1/ingest/{source_id}", tag = "ingress", operation_id = "ingest_event",
    params(
        ("source_id" = String, Path, description = "Source id"),
        ("X-Wap-Signature" = Option<String>, Header,
            description = "`sha256=<hex>` HMAC-SHA256 of the raw body (header name and scheme per source)"),
    ),
    request_body(content = WapEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or a duplicate), or a url_verification answer", body = IngestAck),
        (status = 400, description = "`invalid_json` or `invalid_event` (detail names the field)",
            body = relay_http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_signature`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "`tenant_suspended` or `plan_not_allowed`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`source_not_found`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "`backlog_full`; retry after `Retry-After`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`; retry after `Retry-After`", body = relay_http::Problem,
            content_type = "application/problem+json"),
    ))]
fn ingest_event() {}

/// Answers the subscription handshake with the challenge when the verify token matches.
#[utoipa::path(get, path = "/v1/ingest/{source_id}", tag = "ingress", operation_id = "ingest_handshake",
    params(("source_id" = String, Path, description = "Source id"), HandshakeQuery),
    responses(
        (status = 200, description = "The challenge, exactly", body = String, content_type = "text/plain"),
        (status = 403, description = "The verify token does not match", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`source_not_found`", body = relay_http::Problem,
            content_type = "application/problem+json"),
    ))]
fn ingest_handshake() {}

#[derive(OpenApi)]
#[openapi(paths(ingest_event, ingest_handshake), components(schemas(IngestAck, ChallengeAck, WapEvent)))]
pub(crate) struct IngestDoc;
