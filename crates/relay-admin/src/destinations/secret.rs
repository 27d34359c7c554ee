//! A destination's signing secret: shown on request (`GET /v1/destinations/{id}/secret`) and
//! rotated with a grace period during which deliveries carry both signatures.

use axum::extract::{Path, State};
use relay_core::DestinationId;
use relay_core::secret::{MasterKey, WebhookSecret};
use relay_http::{ApiError, ApiJson};
use relay_store::destinations::{self as store, DestinationRow};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::NOT_FOUND;
use crate::AdminState;
use crate::auth::TenantAuth;
use crate::docs::{NotFound, ValidationFailed};
use crate::extract::{OptionalJson, or_not_found, path_id};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(get_destination_secret)).routes(routes!(rotate_destination_secret))
}

/// A destination's signing secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationSecretOut {
    /// The current `whsec_` secret.
    pub signing_secret: String,
    /// The previous secret while a rotation's grace period lasts (deliveries carry both
    /// signatures meanwhile).
    pub previous_signing_secret: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_expires_at: Option<OffsetDateTime>,
}

impl DestinationSecretOut {
    fn new(key: &MasterKey, r: &DestinationRow) -> Result<Self, ApiError> {
        let now = OffsetDateTime::now_utc();
        let open =
            |sealed: &[u8]| key.open(sealed).map(|s| s.expose().to_owned()).map_err(ApiError::internal);
        let previous = match (&r.previous_signing_secret, r.previous_signing_secret_expires_at) {
            (Some(sealed), Some(at)) if at > now => Some((open(sealed)?, at)),
            _ => None,
        };
        Ok(Self {
            signing_secret: open(&r.signing_secret)?,
            previous_expires_at: previous.as_ref().map(|p| p.1),
            previous_signing_secret: previous.map(|p| p.0),
        })
    }
}

/// Options of a signing secret rotation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationSecretRotateIn {
    /// How long the previous secret keeps signing: 0 to 604800 seconds, default 86400.
    pub previous_valid_seconds: Option<u32>,
}

/// Shows a destination's signing secret (and the previous one during a rotation).
#[utoipa::path(get, path = "/v1/destinations/{id}/secret", tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 200, description = "The signing secrets", body = DestinationSecretOut),
        (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn get_destination_secret(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<ApiJson<DestinationSecretOut>, ApiError> {
    let id: DestinationId = path_id(&id, NOT_FOUND)?;
    let row =
        store::get_destination(&state.pool, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    Ok(ApiJson(DestinationSecretOut::new(&state.master_key, &row)?))
}

/// Generates a new signing secret; the previous one keeps signing for `previous_valid_seconds`.
#[utoipa::path(post, path = "/v1/destinations/{id}/secret/rotate", tag = "destinations",
    request_body = Option<DestinationSecretRotateIn>,
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 200, description = "The new and previous signing secrets", body = DestinationSecretOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn rotate_destination_secret(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    OptionalJson(input): OptionalJson<DestinationSecretRotateIn>,
) -> Result<ApiJson<DestinationSecretOut>, ApiError> {
    let id: DestinationId = path_id(&id, NOT_FOUND)?;
    let asked = input.unwrap_or_default().previous_valid_seconds;
    let expires = relay_core::secret::previous_valid_until(asked, OffsetDateTime::now_utc())
        .map_err(ApiError::validation)?;
    let sealed = state.master_key.seal(WebhookSecret::generate().as_secret());
    let row = store::rotate_destination_secret(&state.pool, auth.tenant_id, id, &sealed, expires)
        .await
        .map_err(or_not_found(NOT_FOUND))?;
    tracing::info!(tenant.id = %auth.tenant_id, destination.id = %id, previous_valid_until = %expires, "destination secret rotated");
    Ok(ApiJson(DestinationSecretOut::new(&state.master_key, &row)?))
}
