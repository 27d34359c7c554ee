//! `POST /v1/destinations/{id}/preview`: what a destination would receive for a WAPing event,
//! without storing or sending anything: for the `waping` format the event's bytes, for
//! `meta_cloud_api` the Meta webhook body and its `X-Hub-Signature-256` (or why the event would
//! not be sent there at all).

use axum::body::Bytes;
use axum::extract::{Path, State};
use relay_core::DestinationId;
use relay_core::meta::{Mapping, map_event};
use relay_http::{ApiError, ApiJson};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::TenantAuth;
use crate::docs::{BadRequest, NotFound};
use crate::extract::{or_not_found, path_id};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(preview_destination))
}

/// What the destination would receive.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewOut {
    /// Whether the event would be sent to this destination at all (format-wise; its filters
    /// are not applied here).
    pub fanned_out: bool,
    /// The body that would be sent, when it would be.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Box<RawValue>>,
    /// `X-Hub-Signature-256` of that body (the `meta_cloud_api` format only).
    pub x_hub_signature_256: Option<String>,
    /// Why it would not be sent (`no_meta_equivalent`, `unsupported_message_type`,
    /// `outgoing_message`, `missing_field`).
    pub reason: Option<&'static str>,
    /// For `missing_field`: the JSON pointer of the field.
    pub field: Option<&'static str>,
}

/// The event of a preview request: the body itself (a WAPing event as WAPing posts it), or the
/// value of `payload` in `{"payload": <event>}` (the contract's shape; an object with an
/// `eventId` is an event, whatever else it holds).
fn unwrap_payload(body: Bytes) -> Bytes {
    #[derive(serde::Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        payload: &'a RawValue,
        #[serde(rename = "eventId")]
        event_id: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Wrapped<'_>>(&body) {
        Ok(w) if w.event_id.is_none() => Bytes::copy_from_slice(w.payload.get().as_bytes()),
        _ => body,
    }
}

/// Previews what this destination would receive for a WAPing event.
///
/// The request body is the event as WAPing posts it, or `{"payload": <event>}`.
#[utoipa::path(post, path = "/v1/destinations/{id}/preview", tag = "destinations",
    request_body(content = Object, description = "A WAPing event as WAPing posts it, or `{\"payload\": <event>}`"),
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 200, description = "What would be sent", body = PreviewOut),
        (status = 400, response = BadRequest), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn preview_destination(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<ApiJson<PreviewOut>, ApiError> {
    let not_found = crate::destinations::NOT_FOUND;
    let id: DestinationId = path_id(&id, not_found)?;
    let row = relay_store::destinations::get_destination(&state.pool, auth.tenant_id, id)
        .await
        .map_err(or_not_found(not_found))?;
    let body = unwrap_payload(body);
    let invalid = |e: String| ApiError::bad_request("invalid_event", e);
    let raw = |bytes: Vec<u8>| {
        String::from_utf8(bytes)
            .ok()
            .and_then(|t| RawValue::from_string(t).ok())
            .ok_or_else(|| invalid("not UTF-8 JSON".into()))
    };
    if row.format != relay_store::destinations::META_CLOUD_API {
        relay_core::event::parse_inbound(&body).map_err(|e| invalid(e.to_string()))?;
        let out = PreviewOut {
            fanned_out: true,
            body: Some(raw(body.to_vec())?),
            x_hub_signature_256: None,
            reason: None,
            field: None,
        };
        return Ok(ApiJson(out));
    }
    let ctx = row.meta_context.map(|c| c.0).unwrap_or_default();
    let out = match map_event(&body, &ctx).map_err(|e| invalid(e.to_string()))? {
        Mapping::Body(meta) => {
            let secret = relay_core::secret::WebhookSecret::parse(
                state.master_key.open(&row.signing_secret).map_err(ApiError::internal)?.expose(),
            )
            .map_err(ApiError::internal)?;
            let signature = relay_core::meta::hub_signature(secret.meta_app_secret(), &meta);
            PreviewOut {
                fanned_out: true,
                body: Some(raw(meta)?),
                x_hub_signature_256: Some(signature),
                reason: None,
                field: None,
            }
        }
        Mapping::Skipped(skip) => {
            let field = match skip {
                relay_core::meta::Skip::MissingField(f) => Some(f),
                _ => None,
            };
            PreviewOut {
                fanned_out: false,
                body: None,
                x_hub_signature_256: None,
                reason: Some(skip.code()),
                field,
            }
        }
    };
    Ok(ApiJson(out))
}
