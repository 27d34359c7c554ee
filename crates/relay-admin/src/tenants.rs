//! Operator routes: tenants (create, list, get, patch), tenant tokens and the plan table.
//! Only operator tokens reach these handlers. A tenant's limit overrides are merged field by field
//! under the tenant's row lock, so two concurrent PATCHes never lose each other's overrides.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use relay_core::TenantId;
use relay_core::plan::{LimitOverrides, Limits, Plan};
use relay_http::{ApiError, ApiJson};
use relay_store::tenants::{self as store, Tenant, TenantStatus, TenantUpdate};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::{OperatorAuth, Role, issue_token};
use crate::docs::{BadRequest, NotFound, ValidationFailed};
use crate::extract::{ApiQuery, OptionalJson, Page, PageRequest, double_option, or_not_found, path_id};

const NOT_FOUND: &str = "tenant_not_found";
const DEFAULT_TOKEN_TTL_SECONDS: u64 = 30 * 86_400;
const MAX_TOKEN_TTL_SECONDS: u64 = 366 * 86_400;

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, update_tenant))
        .routes(routes!(create_tenant_token))
        .routes(routes!(list_plans))
}

/// A tenant's limits (CONTRACT §6).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitsOut {
    /// Whether events are accepted and delivered at all.
    pub webhooks: bool,
    pub sources: u32,
    pub destinations: u32,
    pub deliveries_per_second: u32,
    pub burst: u32,
    /// Undelivered deliveries the tenant may have before ingest answers 429.
    pub backlog: u64,
    /// The longest retry window a destination may have.
    pub retry_window_seconds: u32,
    pub retention_days: u32,
    /// Events per second the tenant's sources may post (429 `rate_limited` past it).
    pub ingest_per_second: u32,
    /// Events that may be posted at once above that rate.
    pub ingest_burst: u32,
}

impl From<Limits> for LimitsOut {
    fn from(l: Limits) -> Self {
        Self {
            webhooks: l.webhooks,
            sources: l.sources,
            destinations: l.destinations,
            deliveries_per_second: l.deliveries_per_second,
            burst: l.burst,
            backlog: l.backlog,
            retry_window_seconds: l.retry_window_seconds,
            retention_days: l.retention_days,
            ingest_per_second: l.ingest_per_second,
            ingest_burst: l.ingest_burst,
        }
    }
}

/// Overrides of plan limits; a missing field means "the plan's value".
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LimitOverridesOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destinations: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_window_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_burst: Option<u32>,
}

impl From<&LimitOverrides> for LimitOverridesOut {
    fn from(o: &LimitOverrides) -> Self {
        Self {
            webhooks: o.webhooks,
            sources: o.sources,
            destinations: o.destinations,
            deliveries_per_second: o.deliveries_per_second,
            burst: o.burst,
            backlog: o.backlog,
            retry_window_seconds: o.retry_window_seconds,
            retention_days: o.retention_days,
            ingest_per_second: o.ingest_per_second,
            ingest_burst: o.ingest_burst,
        }
    }
}

/// Changes to limit overrides: a value sets an override, `null` removes it, a missing field
/// leaves it as it is.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<bool>)]
    pub webhooks: Option<Option<bool>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub sources: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub destinations: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub deliveries_per_second: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub burst: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub backlog: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub retry_window_seconds: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub retention_days: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub ingest_per_second: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub ingest_burst: Option<Option<u32>>,
}

/// A hundred years: longer is "forever" in practice, and dates stay within the calendar.
const MAX_RETENTION_DAYS: u32 = 36_500;

impl LimitsPatch {
    /// A rate, burst or retry window of 0 would silently stop a tenant's deliveries or ingest
    /// (or make every destination invalid): refused, naming the field.
    fn validate(&self) -> Result<(), ApiError> {
        for (field, value) in [
            ("limits.deliveries_per_second", self.deliveries_per_second),
            ("limits.burst", self.burst),
            ("limits.retry_window_seconds", self.retry_window_seconds),
            ("limits.ingest_per_second", self.ingest_per_second),
            ("limits.ingest_burst", self.ingest_burst),
        ] {
            if value == Some(Some(0)) {
                return Err(ApiError::validation(format!("{field}: must be at least 1")));
            }
        }
        if let Some(Some(days)) = self.retention_days
            && days > MAX_RETENTION_DAYS
        {
            return Err(ApiError::validation(format!(
                "limits.retention_days: must be at most {MAX_RETENTION_DAYS}"
            )));
        }
        Ok(())
    }

    fn apply(&self, o: &mut LimitOverrides) {
        macro_rules! lay {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { o.$f = v; } )* };
        }
        lay!(
            webhooks,
            sources,
            destinations,
            deliveries_per_second,
            burst,
            backlog,
            retry_window_seconds,
            retention_days,
            ingest_per_second,
            ingest_burst
        );
    }
}

/// A new tenant.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// 1 to 200 characters (surrounding spaces trimmed), not only spaces, no U+0000.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub name: String,
    pub plan: Plan,
}

/// Changes to a tenant; missing fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// 1 to 200 characters (surrounding spaces trimmed), not only spaces, no U+0000.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub status: Option<TenantStatus>,
    /// Overrides to set (value) or remove (`null`); `"limits": null` removes every override.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<LimitsPatch>)]
    pub limits: Option<Option<LimitsPatch>>,
}

/// A tenant with its effective limits and the operator's overrides.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub status: TenantStatus,
    /// The plan's limits with the overrides applied.
    pub limits: LimitsOut,
    pub limit_overrides: LimitOverridesOut,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Tenant> for TenantOut {
    fn from(t: &Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            plan: t.plan,
            status: t.status,
            limits: t.limits().into(),
            limit_overrides: (&t.overrides).into(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// Options of a new tenant token.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// Lifetime in seconds: 60 to 31622400 (366 days); default 2592000 (30 days).
    #[schema(minimum = 60, maximum = 31_622_400)]
    pub ttl_seconds: Option<u64>,
}

/// A tenant token. Shown once: the relay does not store it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenOut {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A plan and its default limits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanOut {
    pub name: Plan,
    pub limits: LimitsOut,
}

/// Pagination of a list without filters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub(crate) fn validate_name(field: &str, name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation(format!("{field}: must be 1 to 200 characters")));
    }
    Ok(name.to_owned())
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "operator", request_body = TenantIn,
    responses((status = 201, description = "The new tenant", body = TenantOut),
        (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn create_tenant(
    _auth: OperatorAuth,
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<TenantIn>,
) -> Result<(StatusCode, ApiJson<TenantOut>), ApiError> {
    let name = validate_name("name", &input.name)?;
    let tenant = store::insert_tenant(&state.pool, &name, input.plan).await?;
    tracing::info!(tenant.id = %tenant.id, plan = %tenant.plan, "tenant created");
    Ok((StatusCode::CREATED, ApiJson(TenantOut::from(&tenant))))
}

/// Lists tenants, newest first.
#[utoipa::path(get, path = "/v1/tenants", tag = "operator", params(ListQuery),
    responses((status = 200, description = "A page of tenants", body = Page<TenantOut>),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_tenants(
    _auth: OperatorAuth,
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<Page<TenantOut>>, ApiError> {
    let page = PageRequest::<TenantId>::new(q.limit, q.cursor.as_deref())?;
    let rows = store::list_tenants(&state.pool, page.before, page.fetch()).await?;
    Ok(ApiJson(Page::from_rows(rows, page.limit, |t| t.id, |t| TenantOut::from(&t))))
}

/// Gets a tenant.
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "operator",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant", body = TenantOut), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn get_tenant(
    _auth: OperatorAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<ApiJson<TenantOut>, ApiError> {
    let id: TenantId = path_id(&id, NOT_FOUND)?;
    let tenant = store::get_tenant(&state.pool, id).await.map_err(or_not_found(NOT_FOUND))?;
    Ok(ApiJson(TenantOut::from(&tenant)))
}

/// Changes a tenant's name, plan, status or limit overrides.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "operator", request_body = TenantPatch,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The updated tenant", body = TenantOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn update_tenant(
    _auth: OperatorAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<TenantPatch>,
) -> Result<ApiJson<TenantOut>, ApiError> {
    let id: TenantId = path_id(&id, NOT_FOUND)?;
    let name = patch.name.as_deref().map(|n| validate_name("name", n)).transpose()?;
    if let Some(Some(limits)) = &patch.limits {
        limits.validate()?;
    }
    let mut tx = crate::db::begin(&state.pool).await?;
    let current = store::lock_tenant(&mut *tx, id).await.map_err(or_not_found(NOT_FOUND))?;
    let overrides = match &patch.limits {
        None => None,
        Some(None) => Some(LimitOverrides::default()),
        Some(Some(limits)) => {
            let mut overrides = current.overrides.clone();
            limits.apply(&mut overrides);
            Some(overrides)
        }
    };
    let update = TenantUpdate { name, plan: patch.plan, status: patch.status, overrides };
    let tenant = store::update_tenant(&mut *tx, id, &update).await.map_err(or_not_found(NOT_FOUND))?;
    crate::db::commit(tx).await?;
    tracing::info!(tenant.id = %tenant.id, plan = %tenant.plan, status = tenant.status.as_str(), "tenant updated");
    Ok(ApiJson(TenantOut::from(&tenant)))
}

/// Mints a tenant token.
#[utoipa::path(post, path = "/v1/tenants/{id}/tokens", tag = "operator", request_body = Option<TokenIn>,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 201, description = "A new tenant token", body = TokenOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn create_tenant_token(
    _auth: OperatorAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    OptionalJson(input): OptionalJson<TokenIn>,
) -> Result<(StatusCode, ApiJson<TokenOut>), ApiError> {
    let id: TenantId = path_id(&id, NOT_FOUND)?;
    let ttl = input.unwrap_or_default().ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL_SECONDS);
    if !(60..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::validation(format!(
            "ttl_seconds: must be between 60 and {MAX_TOKEN_TTL_SECONDS}"
        )));
    }
    let tenant = store::get_tenant(&state.pool, id).await.map_err(or_not_found(NOT_FOUND))?;
    let (token, expires_at) =
        issue_token(&state.jwt, Role::Tenant, Some(tenant.id), Duration::from_secs(ttl));
    tracing::info!(tenant.id = %tenant.id, ttl_seconds = ttl, "tenant token issued");
    Ok((StatusCode::CREATED, ApiJson(TokenOut { token, expires_at })))
}

/// Lists the plans and their default limits.
#[utoipa::path(get, path = "/v1/plans", tag = "operator",
    responses((status = 200, description = "Every plan", body = Page<PlanOut>)),
    security(("bearer" = [])))]
pub(crate) async fn list_plans(_auth: OperatorAuth) -> ApiJson<Page<PlanOut>> {
    let plans = Plan::ALL.into_iter().map(|p| PlanOut { name: p, limits: p.limits().into() }).collect();
    ApiJson(Page::all(plans))
}
