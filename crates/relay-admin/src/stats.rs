//! The calling tenant's own view: `GET /v1/tenant` (plan, effective limits, usage) and
//! `GET /v1/stats` (counts by status, success rate and latency percentiles per destination,
//! backlog and the age of the oldest pending delivery), all computed in SQL.

use relay_core::DestinationId;
use relay_http::{ApiError, ApiJson};
use relay_store::stats as store;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::docs::BadRequest;
use crate::docs::TooManyReads;
use crate::extract::or_not_found;
use crate::reads::HeavyRead;
use crate::tenants::TenantOut;

const DEFAULT_WINDOW: time::Duration = time::Duration::hours(24);

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(get_current_tenant)).routes(routes!(get_stats))
}

/// What the tenant uses of its limits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageOut {
    pub sources: i64,
    pub destinations: i64,
    /// Pending deliveries, counted up to `limits.backlog` (the cap at which ingest answers 429).
    pub backlog: i64,
}

/// The calling tenant with its usage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurrentTenantOut {
    #[serde(flatten)]
    pub tenant: TenantOut,
    pub usage: UsageOut,
}

/// Gets the calling tenant: plan, effective limits and usage.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant",
    responses((status = 429, response = TooManyReads), (status = 200, description = "The calling tenant", body = CurrentTenantOut)),
    security(("bearer" = [])))]
pub(crate) async fn get_current_tenant(auth: HeavyRead) -> Result<ApiJson<CurrentTenantOut>, ApiError> {
    let tenant = relay_store::tenants::get_tenant(&auth.pool, auth.tenant_id)
        .await
        .map_err(or_not_found("tenant_not_found"))?;
    let sources = relay_store::sources::count_sources(&auth.pool, auth.tenant_id).await?;
    let destinations = relay_store::destinations::count_destinations(&auth.pool, auth.tenant_id).await?;
    let cap = i64::try_from(tenant.limits().backlog).unwrap_or(i64::MAX);
    let backlog = store::backlog(&auth.pool, auth.tenant_id, cap).await?;
    Ok(ApiJson(CurrentTenantOut {
        tenant: TenantOut::from(&tenant),
        usage: UsageOut { sources, destinations, backlog: backlog.pending },
    }))
}

/// The window of the statistics.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Start of the window (RFC 3339; default 24 hours ago; never earlier than the retention).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub since: Option<OffsetDateTime>,
}

/// Deliveries by their current status.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StatusCounts {
    pub pending: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// Attempt latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// One destination's activity in the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationStatsOut {
    pub destination_id: String,
    /// Deliveries created in the window, by current status.
    pub deliveries: StatusCounts,
    /// Attempts started in the window.
    pub attempts: i64,
    /// Successful attempts / attempts; null without attempts.
    pub success_rate: Option<f64>,
    pub latency_ms: Latency,
}

/// The tenant's delivery statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsOut {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Deliveries created in the window, by current status.
    pub deliveries: StatusCounts,
    /// Successful attempts / attempts in the window; null without attempts.
    pub success_rate: Option<f64>,
    pub destinations: Vec<DestinationStatsOut>,
    /// Pending deliveries now, whenever created, counted up to the plan's backlog cap.
    pub backlog: i64,
    /// Age of the oldest pending delivery; null when there is none.
    pub oldest_pending_age_seconds: Option<i64>,
}

fn rate(successes: i64, attempts: i64) -> Option<f64> {
    (attempts > 0).then(|| successes as f64 / attempts as f64)
}

/// Delivery statistics of the calling tenant.
#[utoipa::path(get, path = "/v1/stats", tag = "tenant", params(StatsQuery),
    responses((status = 429, response = TooManyReads), (status = 200, description = "Statistics since `since`", body = StatsOut),
        (status = 400, response = BadRequest)),
    security(("bearer" = [])))]
pub(crate) async fn get_stats(
    auth: HeavyRead,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<StatsQuery>,
) -> Result<ApiJson<StatsOut>, ApiError> {
    let tenant = relay_store::tenants::get_tenant(&auth.pool, auth.tenant_id)
        .await
        .map_err(or_not_found("tenant_not_found"))?;
    let limits = tenant.limits();
    let until = OffsetDateTime::now_utc();
    // Nothing older than the retention is kept: a `since` before it reads no more than that.
    let earliest = until - time::Duration::days(i64::from(limits.retention_days.max(1)));
    let since = q.since.unwrap_or(until - DEFAULT_WINDOW).max(earliest);
    let rows = store::destination_stats(&auth.pool, auth.tenant_id, since).await?;
    let cap = i64::try_from(limits.backlog).unwrap_or(i64::MAX);
    let backlog = store::backlog(&auth.pool, auth.tenant_id, cap).await?;
    let mut totals = StatusCounts::default();
    let (mut attempts, mut successes) = (0, 0);
    let destinations = rows
        .into_iter()
        .map(|r| {
            totals.pending += r.pending;
            totals.succeeded += r.succeeded;
            totals.failed += r.failed;
            attempts += r.attempts;
            successes += r.successful_attempts;
            DestinationStatsOut {
                destination_id: DestinationId::from_uuid(r.destination_id).to_string(),
                deliveries: StatusCounts { pending: r.pending, succeeded: r.succeeded, failed: r.failed },
                attempts: r.attempts,
                success_rate: rate(r.successful_attempts, r.attempts),
                latency_ms: Latency { p50: r.p50_ms, p99: r.p99_ms },
            }
        })
        .collect();
    Ok(ApiJson(StatsOut {
        since,
        until,
        deliveries: totals,
        success_rate: rate(successes, attempts),
        destinations,
        backlog: backlog.pending,
        oldest_pending_age_seconds: backlog.oldest_pending_at.map(|t| (until - t).whole_seconds().max(0)),
    }))
}
