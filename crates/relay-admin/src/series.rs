//! `GET /v1/stats/series`: the tenant's attempts over time (count, outcomes, latency
//! percentiles per bucket), for charts such as the dashboard's overview; computed in SQL over
//! the window's rows only.

use relay_http::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::docs::TooManyReads;
use crate::docs::{BadRequest, ValidationFailed};
use crate::extract::{ApiQuery, or_not_found};
use crate::reads::HeavyRead;

/// At most this many buckets per answer.
pub const MAX_BUCKETS: i64 = 1_440;
const DEFAULT_WINDOW: time::Duration = time::Duration::hours(1);
const DEFAULT_BUCKET_SECONDS: i64 = 60;

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(get_series))
}

/// The window and bucket size.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// Start (RFC 3339; default an hour before `until`; never earlier than the retention).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub since: Option<OffsetDateTime>,
    /// End (RFC 3339; default now).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub until: Option<OffsetDateTime>,
    /// Bucket size in seconds (default 60); at most 1,440 buckets per window.
    #[param(minimum = 1)]
    pub bucket_seconds: Option<u32>,
}

/// One bucket: the attempts that started in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BucketOut {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub attempts: i64,
    pub succeeded: i64,
    /// Attempts that did not succeed (any other outcome).
    pub failed: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The tenant's attempts over time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesOut {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub bucket_seconds: u32,
    /// Oldest first; buckets without attempts are left out.
    pub buckets: Vec<BucketOut>,
}

/// The calling tenant's attempts over time, by buckets.
#[utoipa::path(get, path = "/v1/stats/series", tag = "tenant", params(SeriesQuery),
    responses((status = 429, response = TooManyReads), (status = 200, description = "Attempts per bucket", body = SeriesOut),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn get_series(
    auth: HeavyRead,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> Result<ApiJson<SeriesOut>, ApiError> {
    let tenant = relay_store::tenants::get_tenant(&auth.pool, auth.tenant_id)
        .await
        .map_err(or_not_found("tenant_not_found"))?;
    let now = OffsetDateTime::now_utc();
    let until = q.until.unwrap_or(now).min(now);
    let earliest = now - time::Duration::days(i64::from(tenant.limits().retention_days.max(1)));
    let since = q.since.unwrap_or(until - DEFAULT_WINDOW).max(earliest);
    if since >= until {
        return Err(ApiError::validation("since: must be before until"));
    }
    let bucket = q.bucket_seconds.map_or(DEFAULT_BUCKET_SECONDS, i64::from);
    if bucket < 1 {
        return Err(ApiError::validation("bucket_seconds: must be at least 1"));
    }
    if (until - since).whole_seconds() / bucket > MAX_BUCKETS {
        return Err(ApiError::validation(format!(
            "bucket_seconds: at most {MAX_BUCKETS} buckets per window; use larger buckets or a shorter window"
        )));
    }
    let rows = relay_store::stats::attempt_series(&auth.pool, auth.tenant_id, since, until, bucket).await?;
    let buckets = rows
        .into_iter()
        .map(|r| BucketOut {
            start: r.start,
            attempts: r.attempts,
            succeeded: r.succeeded,
            failed: r.failed,
            p50_ms: r.p50_ms,
            p99_ms: r.p99_ms,
        })
        .collect();
    Ok(ApiJson(SeriesOut { since, until, bucket_seconds: bucket as u32, buckets }))
}
