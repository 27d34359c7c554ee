//! Sources: a tenant's ingest endpoints and how their signatures are verified. Secrets and
//! verify tokens are sealed with the master key before they reach the store and never come back
//! out through the API: a source shows only `secret_hint` and `verify_token_set`. Creation counts
//! the tenant's sources under the tenant's row lock, so the plan limit holds under concurrency.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use relay_core::SourceId;
use relay_core::secret::{MasterKey, Secret};
use relay_core::verify::Verification;
use relay_http::{ApiError, ApiJson};
use relay_store::sources::{self as store, NewSource, SourceRow, SourceUpdate};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::TenantAuth;
use crate::docs::{BadRequest, NotFound, ValidationFailed};
use crate::extract::{ApiQuery, Page, PageRequest, double_option, or_not_found, path_id};
use crate::tenants::{ListQuery, validate_name};
use crate::verification::VerificationConfig;

const NOT_FOUND: &str = "source_not_found";

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_source, list_sources))
        .routes(routes!(get_source, update_source, delete_source))
        .routes(routes!(rotate_source_secret))
}

/// A new source.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    /// 1 to 200 characters (surrounding spaces trimmed), not only spaces, no U+0000.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub name: String,
    /// The signing secret WAPing uses (8 to 1024 characters; a `whsec_` secret for
    /// `standard_webhooks`). Required unless `verification.scheme` is `none`.
    pub secret: Option<String>,
    /// Default: `{"scheme":"hmac_sha256","header":"X-Wap-Signature"}`.
    pub verification: Option<VerificationConfig>,
    /// The token the GET handshake must present (1 to 256 characters).
    pub verify_token: Option<String>,
    /// JSON pointers (1 to 5, e.g. `["/deviceId", "/message/id"]`) whose values identify an
    /// event for dedupe besides its `eventId` (a duplicate of either is dropped); an event lacking one is identified by its
    /// `eventId`. Default: none (the `eventId`).
    pub dedupe_key: Option<Vec<String>>,
    /// Silence alerts: after this many seconds (60 to 2592000) without events, the source is
    /// reported silent (`relay.source.silent`), and so is each device seen on it
    /// (`relay.device.silent`); `…resumed` when events come back. Default: null (off).
    #[schema(minimum = 60, maximum = 2592000)]
    pub silence_alert_seconds: Option<u32>,
}

/// Changes to a source; missing fields stay as they are. A `secret` given here replaces the
/// current one at once (use the rotate route to keep the old one valid for a while).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    /// 1 to 200 characters (surrounding spaces trimmed), not only spaces, no U+0000.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub name: Option<String>,
    pub secret: Option<String>,
    pub verification: Option<VerificationConfig>,
    /// A new verify token, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub verify_token: Option<Option<String>>,
    /// A new dedupe key, or `null` for the `eventId` again; applies to events received after
    /// the change.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub dedupe_key: Option<Option<Vec<String>>>,
    /// New silence alert seconds (60 to 2592000), or `null` to turn the alerts off; applies at
    /// once to the source and the devices already seen.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 60, maximum = 2592000)]
    pub silence_alert_seconds: Option<Option<u32>>,
}

/// A secret rotation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSecretIn {
    /// The new secret.
    pub secret: String,
    /// How long the previous secret keeps verifying: 0 to 604800 seconds, default 86400.
    pub previous_valid_seconds: Option<u32>,
}

/// A source. Its secret is never shown; `secret_hint` helps recognise it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceOut {
    pub id: String,
    pub name: String,
    /// Where WAPing posts this source's events.
    pub ingest_url: String,
    pub verification: VerificationConfig,
    /// False when `verification.scheme` is `none`: anyone who knows the URL can post events.
    pub verified: bool,
    pub secret_hint: Option<String>,
    /// While a rotation is in progress: when the previous secret stops verifying.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub verify_token_set: bool,
    /// The JSON pointers that identify an event for dedupe; null: its `eventId`.
    pub dedupe_key: Option<Vec<String>>,
    /// Seconds without events before a silence alert; null: no alerts.
    pub silence_alert_seconds: Option<i32>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl SourceOut {
    fn new(row: &SourceRow, public_url: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            id: row.source_id().to_string(),
            name: row.name.clone(),
            ingest_url: format!("{}/v1/ingest/{}", public_url.trim_end_matches('/'), row.source_id()),
            verification: VerificationConfig::from(&row.verification.0),
            verified: row.verification.0.is_verified(),
            secret_hint: row.secret_hint.clone(),
            previous_secret_expires_at: row.previous_secret_at(now).and(row.previous_secret_expires_at),
            verify_token_set: row.verify_token.is_some(),
            dedupe_key: row.dedupe_key.clone(),
            silence_alert_seconds: row.silence_alert_seconds,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn check_verify_token(token: &str) -> Result<Secret, ApiError> {
    if token.is_empty() || token.chars().count() > 256 {
        return Err(ApiError::validation("verify_token: must be 1 to 256 characters"));
    }
    Ok(Secret::new(token))
}

fn check_silence(seconds: u32) -> Result<i32, ApiError> {
    relay_core::operational::validate_silence(seconds).map_err(ApiError::validation)
}

fn check_secret(verification: &Verification, secret: Option<&Secret>) -> Result<(), ApiError> {
    verification.validate(secret).map_err(|e| ApiError::validation(e.to_string()))
}

fn open(key: &MasterKey, sealed: Option<&[u8]>) -> Result<Option<Secret>, ApiError> {
    sealed.map(|s| key.open(s)).transpose().map_err(ApiError::internal)
}

/// Creates a source (403 `plan_limit` past the plan's source count).
#[utoipa::path(post, path = "/v1/sources", tag = "sources", request_body = SourceIn,
    responses((status = 201, description = "The new source", body = SourceOut),
        (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn create_source(
    auth: TenantAuth,
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<SourceIn>,
) -> Result<(StatusCode, ApiJson<SourceOut>), ApiError> {
    crate::quota::precheck_count_limit(&state.pool, auth.tenant_id, crate::quota::Counted::Sources).await?;
    let name = validate_name("name", &input.name)?;
    let verification: Verification = input.verification.map(Into::into).unwrap_or_default();
    let secret = input.secret.map(Secret::new);
    check_secret(&verification, secret.as_ref())?;
    let verify_token = input.verify_token.as_deref().map(check_verify_token).transpose()?;
    if let Some(key) = &input.dedupe_key {
        relay_core::dedupe::validate(key).map_err(ApiError::validation)?;
    }
    let silence_alert_seconds = input.silence_alert_seconds.map(check_silence).transpose()?;
    let new = NewSource {
        tenant_id: auth.tenant_id,
        name,
        verification,
        secret: secret.as_ref().map(|s| state.master_key.seal(s)),
        secret_hint: secret.as_ref().map(Secret::hint),
        verify_token: verify_token.as_ref().map(|t| state.master_key.seal(t)),
        dedupe_key: input.dedupe_key,
        silence_alert_seconds,
    };
    let mut tx = crate::db::begin(&state.pool).await?;
    crate::quota::check_count_limit(&mut tx, auth.tenant_id, crate::quota::Counted::Sources).await?;
    let row = store::insert_source(&mut *tx, &new).await?;
    crate::db::commit(tx).await?;
    tracing::info!(tenant.id = %auth.tenant_id, source.id = %row.source_id(), "source created");
    Ok((StatusCode::CREATED, ApiJson(SourceOut::new(&row, &state.public_url))))
}

/// Lists the tenant's sources, newest first.
#[utoipa::path(get, path = "/v1/sources", tag = "sources", params(ListQuery),
    responses((status = 200, description = "A page of sources", body = Page<SourceOut>),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_sources(
    auth: TenantAuth,
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<Page<SourceOut>>, ApiError> {
    let page = PageRequest::<SourceId>::new(q.limit, q.cursor.as_deref())?;
    let rows = store::list_sources(&state.pool, auth.tenant_id, page.before, page.fetch()).await?;
    Ok(ApiJson(Page::from_rows(rows, page.limit, SourceRow::source_id, |r| {
        SourceOut::new(&r, &state.public_url)
    })))
}

/// Gets a source.
#[utoipa::path(get, path = "/v1/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    responses((status = 200, description = "The source", body = SourceOut), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn get_source(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<ApiJson<SourceOut>, ApiError> {
    let id: SourceId = path_id(&id, NOT_FOUND)?;
    let row = store::get_source(&state.pool, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    Ok(ApiJson(SourceOut::new(&row, &state.public_url)))
}

/// Changes a source's name, secret, verification, verify token, dedupe key or silence alerts.
#[utoipa::path(patch, path = "/v1/sources/{id}", tag = "sources", request_body = SourcePatch,
    params(("id" = String, Path, description = "Source id")),
    responses((status = 200, description = "The updated source", body = SourceOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn update_source(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<SourcePatch>,
) -> Result<ApiJson<SourceOut>, ApiError> {
    let id: SourceId = path_id(&id, NOT_FOUND)?;
    let key = &state.master_key;
    let mut tx = crate::db::begin(&state.pool).await?;
    let row = store::lock_source(&mut *tx, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    let name = match &patch.name {
        Some(n) => validate_name("name", n)?,
        None => row.name.clone(),
    };
    let verification =
        patch.verification.clone().map(Verification::from).unwrap_or_else(|| row.verification.0.clone());
    let mut update = SourceUpdate {
        name,
        verification,
        secret: row.secret.clone(),
        secret_hint: row.secret_hint.clone(),
        previous_secret: row.previous_secret.clone(),
        previous_secret_expires_at: row.previous_secret_expires_at,
        verify_token: row.verify_token.clone(),
        dedupe_key: row.dedupe_key.clone(),
        silence_alert_seconds: row.silence_alert_seconds,
    };
    let secret = match patch.secret {
        Some(s) => {
            let s = Secret::new(s);
            update.secret = Some(key.seal(&s));
            update.secret_hint = Some(s.hint());
            update.previous_secret = None;
            update.previous_secret_expires_at = None;
            Some(s)
        }
        None => open(key, row.secret.as_deref())?,
    };
    check_secret(&update.verification, secret.as_ref())?;
    match &patch.verify_token {
        Some(Some(t)) => update.verify_token = Some(key.seal(&check_verify_token(t)?)),
        Some(None) => update.verify_token = None,
        None => {}
    }
    if let Some(key) = patch.dedupe_key {
        if let Some(pointers) = &key {
            relay_core::dedupe::validate(pointers).map_err(ApiError::validation)?;
        }
        update.dedupe_key = key;
    }
    if let Some(seconds) = patch.silence_alert_seconds {
        update.silence_alert_seconds = seconds.map(check_silence).transpose()?;
    }
    let row =
        store::update_source(&mut *tx, auth.tenant_id, id, &update).await.map_err(or_not_found(NOT_FOUND))?;
    crate::db::commit(tx).await?;
    tracing::info!(tenant.id = %auth.tenant_id, source.id = %id, "source updated");
    Ok(ApiJson(SourceOut::new(&row, &state.public_url)))
}

/// Deletes a source: its ingest URL answers 404 from now on.
#[utoipa::path(delete, path = "/v1/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    responses((status = 204, description = "Deleted"), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn delete_source(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: SourceId = path_id(&id, NOT_FOUND)?;
    store::delete_source(&state.pool, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    tracing::info!(tenant.id = %auth.tenant_id, source.id = %id, "source deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a source's secret; the previous one keeps verifying for `previous_valid_seconds`.
#[utoipa::path(post, path = "/v1/sources/{id}/secret/rotate", tag = "sources", request_body = SourceSecretIn,
    params(("id" = String, Path, description = "Source id")),
    responses((status = 200, description = "The source with its new secret hint", body = SourceOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn rotate_source_secret(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SourceSecretIn>,
) -> Result<ApiJson<SourceOut>, ApiError> {
    let id: SourceId = path_id(&id, NOT_FOUND)?;
    let expires =
        relay_core::secret::previous_valid_until(input.previous_valid_seconds, OffsetDateTime::now_utc())
            .map_err(ApiError::validation)?;
    let secret = Secret::new(input.secret);
    let mut tx = crate::db::begin(&state.pool).await?;
    let row = store::lock_source(&mut *tx, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    if row.verification.0.is_verified() {
        check_secret(&row.verification.0, Some(&secret))?;
    }
    let sealed = state.master_key.seal(&secret);
    let row = store::rotate_source_secret(&mut *tx, auth.tenant_id, id, &sealed, &secret.hint(), expires)
        .await
        .map_err(or_not_found(NOT_FOUND))?;
    crate::db::commit(tx).await?;
    tracing::info!(tenant.id = %auth.tenant_id, source.id = %id, previous_valid_until = %expires, "source secret rotated");
    Ok(ApiJson(SourceOut::new(&row, &state.public_url)))
}
