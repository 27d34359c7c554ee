//! Destinations: where a tenant's events fan out to. The signing secret is generated here, sealed
//! with the master key, and shown only in the response to create and by the `/secret` route.
//! Rotation keeps the previous secret for a grace period, during which deliveries carry both
//! signatures. Every create or patch re-runs the URL through the SSRF address policy.
//!
//! Custom headers are credentials often enough (`Authorization: Bearer …`) that the
//! credential-like ones are sealed at rest (relay-store's `destinations::headers`) and never
//! shown again: responses carry their hint (`…` and the last four characters) instead.

mod checks;
mod model;
mod secret;

use model::{DestinationIn, DestinationOut, DestinationPatch, RetryPolicyIn};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use relay_core::destination as defaults;
use relay_core::secret::WebhookSecret;
use relay_core::{DestinationId, SourceId, TenantId};
use relay_http::{ApiError, ApiJson};
use relay_store::destinations::headers::{self as stored_headers, StoredHeaders};
use relay_store::destinations::{self as store, DestinationUpdate, NewDestination};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::TenantAuth;
use crate::docs::{BadRequest, NotFound, ValidationFailed};
use crate::extract::{ApiQuery, Page, PageRequest, or_not_found, path_id};
use crate::tenants::ListQuery;

pub(crate) const NOT_FOUND: &str = "destination_not_found";
const DISABLED_BY_TENANT: &str = "disabled through the admin API";

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_destination, list_destinations))
        .routes(routes!(get_destination, update_destination, delete_destination))
        .merge(secret::routes())
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn apply_retry(u: &mut DestinationUpdate, r: &RetryPolicyIn) {
    if let Some(v) = r.initial_delay_ms {
        u.initial_delay_ms = to_i64(v);
    }
    if let Some(v) = r.max_delay_ms {
        u.max_delay_ms = to_i64(v);
    }
    if let Some(v) = r.window_seconds {
        u.window_seconds = to_i32(v);
    }
}

/// Refuses `source_ids` that are not live sources of the tenant.
async fn check_sources_exist(
    state: &AdminState,
    tenant: TenantId,
    ids: &Option<Vec<SourceId>>,
) -> Result<(), ApiError> {
    let Some(ids) = ids.as_ref().filter(|ids| !ids.is_empty()) else { return Ok(()) };
    let missing = relay_store::sources::missing_sources(&state.pool, tenant, ids).await?;
    match missing.first() {
        Some(id) => Err(ApiError::validation(format!("source_ids: no source {id}"))),
        None => Ok(()),
    }
}

/// Creates a destination and returns it with its signing secret (403 `plan_limit` past the
/// plan's destination count, 422 `destination_not_allowed` for a refused URL).
#[utoipa::path(post, path = "/v1/destinations", tag = "destinations", request_body = DestinationIn,
    responses((status = 201, description = "The new destination, with `signing_secret`", body = DestinationOut),
        (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn create_destination(
    auth: TenantAuth,
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<DestinationIn>,
) -> Result<(StatusCode, ApiJson<DestinationOut>), ApiError> {
    // The plan's count first: a tenant without room gets 403, not a validation error or a DNS wait.
    let limits =
        crate::quota::precheck_count_limit(&state.pool, auth.tenant_id, crate::quota::Counted::Destinations)
            .await?;
    let max_window = limits.retry_window_seconds;
    let headers = input.headers.unwrap_or_default();
    checks::check_headers(&headers)?;
    let source_ids = input.source_ids.as_deref().map(checks::parse_source_ids).transpose()?;
    let mut draft = DestinationUpdate {
        url: String::new(),
        description: input.description,
        source_ids,
        event_types: input.event_types.unwrap_or_else(|| vec!["*".to_owned()]),
        device_ids: input.device_ids,
        headers: stored_headers::seal(&state.master_key, &headers),
        enabled: input.enabled.unwrap_or(true),
        disabled_reason: None,
        paused: input.paused.unwrap_or(false),
        replay_on_recovery: input.replay_on_recovery.unwrap_or(false),
        format: input.format.unwrap_or_default().as_str().to_owned(),
        meta_context: checks::check_meta(input.meta)?,
        ordering: input.ordering.unwrap_or_default(),
        timeout_ms: to_i32(input.timeout_ms.unwrap_or(defaults::TIMEOUT_MS)),
        rate_limit_per_second: input.rate_limit_per_second.map(to_i32),
        max_in_flight: to_i32(input.max_in_flight.unwrap_or(defaults::MAX_IN_FLIGHT)),
        initial_delay_ms: to_i64(defaults::RETRY.initial_delay_ms),
        max_delay_ms: to_i64(defaults::RETRY.max_delay_ms),
        window_seconds: to_i32(
            max_window.min(u32::try_from(defaults::RETRY.window_seconds).unwrap_or(u32::MAX)),
        ),
    };
    let retry = input.retry_policy.unwrap_or_default();
    apply_retry(&mut draft, &retry);
    checks::check_settings(&draft, max_window, retry.window_seconds.is_some())?;
    draft.url = checks::check_url(&state, &input.url).await?;
    check_sources_exist(&state, auth.tenant_id, &draft.source_ids).await?;
    let secret = WebhookSecret::generate();
    let new = NewDestination {
        tenant_id: auth.tenant_id,
        url: draft.url,
        description: draft.description,
        source_ids: draft.source_ids,
        event_types: draft.event_types,
        device_ids: draft.device_ids,
        headers: draft.headers.plain,
        enabled: draft.enabled,
        paused: draft.paused,
        replay_on_recovery: draft.replay_on_recovery,
        format: draft.format.clone(),
        meta_context: draft.meta_context.clone(),
        ordering: draft.ordering,
        timeout_ms: draft.timeout_ms,
        rate_limit_per_second: draft.rate_limit_per_second,
        max_in_flight: draft.max_in_flight,
        initial_delay_ms: draft.initial_delay_ms,
        max_delay_ms: draft.max_delay_ms,
        window_seconds: draft.window_seconds,
        signing_secret: state.master_key.seal(secret.as_secret()),
    };
    let mut tx = crate::db::begin(&state.pool).await?;
    crate::quota::check_count_limit(&mut tx, auth.tenant_id, crate::quota::Counted::Destinations).await?;
    let row = store::insert_destination_with_sealed_headers(&mut *tx, &new, draft.headers.sealed.as_deref())
        .await?;
    crate::db::commit(tx).await?;
    tracing::info!(tenant.id = %auth.tenant_id, destination.id = %DestinationId::from_uuid(row.id), "destination created");
    let mut out = DestinationOut::new(&state.master_key, &row)?;
    out.signing_secret = Some(secret.as_secret().expose().to_owned());
    Ok((StatusCode::CREATED, ApiJson(out)))
}

/// Lists the tenant's destinations, newest first.
#[utoipa::path(get, path = "/v1/destinations", tag = "destinations", params(ListQuery),
    responses((status = 200, description = "A page of destinations", body = Page<DestinationOut>),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_destinations(
    auth: TenantAuth,
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<Page<DestinationOut>>, ApiError> {
    let page = PageRequest::<DestinationId>::new(q.limit, q.cursor.as_deref())?;
    let rows = store::list_destinations(&state.pool, auth.tenant_id, page.before, page.fetch()).await?;
    let shown: Vec<DestinationOut> =
        rows.iter().map(|r| DestinationOut::new(&state.master_key, r)).collect::<Result<_, _>>()?;
    Ok(ApiJson(Page::from_rows(shown, page.limit, |d| d.id.clone(), |d| d)))
}

/// Gets a destination (without its secret).
#[utoipa::path(get, path = "/v1/destinations/{id}", tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 200, description = "The destination", body = DestinationOut),
        (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn get_destination(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<ApiJson<DestinationOut>, ApiError> {
    let id: DestinationId = path_id(&id, NOT_FOUND)?;
    let row =
        store::get_destination(&state.pool, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    Ok(ApiJson(DestinationOut::new(&state.master_key, &row)?))
}

/// Changes a destination; `enabled: true` re-enables it and its waiting deliveries flow again.
#[utoipa::path(patch, path = "/v1/destinations/{id}", tag = "destinations", request_body = DestinationPatch,
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 200, description = "The updated destination", body = DestinationOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn update_destination(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<DestinationPatch>,
) -> Result<ApiJson<DestinationOut>, ApiError> {
    let id: DestinationId = path_id(&id, NOT_FOUND)?;
    // Existence first, so another tenant's id answers 404 before any validation detail leaks.
    store::get_destination(&state.pool, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    let url = match &patch.url {
        Some(url) => Some(checks::check_url(&state, url).await?),
        None => None,
    };
    let source_ids = match &patch.source_ids {
        Some(Some(ids)) => Some(Some(checks::parse_source_ids(ids)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(ids) = &source_ids {
        check_sources_exist(&state, auth.tenant_id, ids).await?;
    }
    // A new header map replaces the old one whole, credentials included.
    let headers = match &patch.headers {
        Some(headers) => {
            checks::check_headers(headers)?;
            Some(stored_headers::seal(&state.master_key, headers))
        }
        None => None,
    };
    let tenant = relay_store::tenants::get_tenant(&state.pool, auth.tenant_id).await?;
    let mut tx = crate::db::begin(&state.pool).await?;
    let row = store::lock_destination(&mut *tx, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    let mut u = DestinationUpdate {
        url: url.unwrap_or(row.url),
        description: patch.description.unwrap_or(row.description),
        source_ids: source_ids
            .unwrap_or_else(|| row.source_ids.map(|ids| ids.into_iter().map(SourceId::from_uuid).collect())),
        event_types: patch.event_types.unwrap_or(row.event_types),
        device_ids: patch.device_ids.unwrap_or(row.device_ids),
        headers: headers.unwrap_or(StoredHeaders { plain: row.headers.0, sealed: row.sealed_headers }),
        enabled: patch.enabled.unwrap_or(row.enabled),
        disabled_reason: Some(DISABLED_BY_TENANT.to_owned()),
        paused: patch.paused.unwrap_or(row.paused),
        replay_on_recovery: patch.replay_on_recovery.unwrap_or(row.replay_on_recovery),
        format: patch.format.map_or(row.format, |f| f.as_str().to_owned()),
        meta_context: match patch.meta {
            Some(meta) => checks::check_meta(meta)?,
            None => row.meta_context.map(|c| c.0),
        },
        ordering: patch.ordering.unwrap_or(row.ordering),
        timeout_ms: patch.timeout_ms.map_or(row.timeout_ms, to_i32),
        rate_limit_per_second: patch
            .rate_limit_per_second
            .map_or(row.rate_limit_per_second, |r| r.map(to_i32)),
        max_in_flight: patch.max_in_flight.map_or(row.max_in_flight, to_i32),
        initial_delay_ms: row.initial_delay_ms,
        max_delay_ms: row.max_delay_ms,
        window_seconds: row.window_seconds,
    };
    let retry = patch.retry_policy.unwrap_or_default();
    apply_retry(&mut u, &retry);
    checks::check_settings(&u, tenant.limits().retry_window_seconds, retry.window_seconds.is_some())?;
    let resumed = row.paused && !u.paused;
    let reordered = row.ordering != u.ordering;
    let row =
        store::update_destination(&mut *tx, auth.tenant_id, id, &u).await.map_err(or_not_found(NOT_FOUND))?;
    if resumed {
        store::restart_windows(&mut *tx, auth.tenant_id, id).await?;
    }
    if reordered {
        store::rekey_queued(&mut *tx, auth.tenant_id, id, u.ordering).await?;
    }
    crate::db::commit(tx).await?;
    tracing::info!(tenant.id = %auth.tenant_id, destination.id = %id, enabled = row.enabled, "destination updated");
    Ok(ApiJson(DestinationOut::new(&state.master_key, &row)?))
}

/// Deletes a destination; its pending deliveries fail at once.
#[utoipa::path(delete, path = "/v1/destinations/{id}", tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 204, description = "Deleted"), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn delete_destination(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: DestinationId = path_id(&id, NOT_FOUND)?;
    let mut tx = crate::db::begin(&state.pool).await?;
    store::delete_destination(&mut *tx, auth.tenant_id, id).await.map_err(or_not_found(NOT_FOUND))?;
    let failed = relay_store::deliveries::fail_pending_for_destination(&mut *tx, auth.tenant_id, id).await?;
    crate::db::commit(tx).await?;
    tracing::info!(tenant.id = %auth.tenant_id, destination.id = %id, failed_deliveries = failed, "destination deleted");
    Ok(StatusCode::NO_CONTENT)
}
