//! Tenant usage and delivery statistics, computed in SQL: counts by status, success rate and
//! latency percentiles per destination, backlog and the age of the oldest pending delivery.
//! Time-bounded queries use the id range of `keyset` so they read only the window's rows.

use relay_core::TenantId;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::keyset::id_floor;

/// One destination's activity since a point in time.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DestinationStats {
    pub destination_id: Uuid,
    /// Deliveries created in the window, by their current status.
    pub pending: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Attempts started in the window, and how many of them succeeded.
    pub attempts: i64,
    pub successful_attempts: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Per-destination activity since `since`, for destinations that had any.
pub async fn destination_stats(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    since: OffsetDateTime,
) -> Result<Vec<DestinationStats>> {
    let rows = sqlx::query_as(
        "WITH d AS ( \
             SELECT destination_id, \
                    count(*) FILTER (WHERE status = 'pending') AS pending, \
                    count(*) FILTER (WHERE status = 'succeeded') AS succeeded, \
                    count(*) FILTER (WHERE status = 'failed') AS failed \
             FROM deliveries WHERE tenant_id = $1 AND id >= $2 AND created_at >= $3 \
             GROUP BY destination_id), \
         a AS ( \
             SELECT destination_id, count(*) AS attempts, \
                    count(*) FILTER (WHERE outcome = 'success') AS successful_attempts, \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms, \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms \
             FROM attempts WHERE tenant_id = $1 AND id >= $2 AND started_at >= $3 \
             GROUP BY destination_id) \
         SELECT destination_id, \
                coalesce(d.pending, 0) AS pending, coalesce(d.succeeded, 0) AS succeeded, \
                coalesce(d.failed, 0) AS failed, coalesce(a.attempts, 0) AS attempts, \
                coalesce(a.successful_attempts, 0) AS successful_attempts, a.p50_ms, a.p99_ms \
         FROM d FULL JOIN a USING (destination_id) ORDER BY destination_id DESC",
    )
    .bind(tenant.uuid())
    .bind(id_floor(since))
    .bind(since)
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// The tenant's undelivered work right now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Backlog {
    pub pending: i64,
    pub oldest_pending_at: Option<OffsetDateTime>,
}

/// The number of pending deliveries, counted up to `cap` (the plan's backlog cap, so the cost is
/// bounded), and the creation time of the oldest one (the queue's key leads with the tenant and
/// the time-ordered delivery id).
pub async fn backlog(db: impl PgExecutor<'_>, tenant: TenantId, cap: i64) -> Result<Backlog> {
    let row = sqlx::query_as(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM delivery_queue WHERE tenant_id = $1 LIMIT $2) p) \
                  AS pending, \
                (SELECT d.created_at FROM delivery_queue q JOIN deliveries d \
                   ON d.tenant_id = q.tenant_id AND d.id = q.delivery_id \
                 WHERE q.tenant_id = $1 ORDER BY q.delivery_id LIMIT 1) AS oldest_pending_at",
    )
    .bind(tenant.uuid())
    .bind(cap)
    .fetch_one(db)
    .await?;
    Ok(row)
}

/// One time bucket of the tenant's attempts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SeriesBucket {
    pub start: OffsetDateTime,
    pub attempts: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The tenant's attempts in `[since, until)` by buckets of `bucket_seconds`, buckets without
/// attempts left out (the id range bounds what is read, as for the other windows).
pub async fn attempt_series(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    since: OffsetDateTime,
    until: OffsetDateTime,
    bucket_seconds: i64,
) -> Result<Vec<SeriesBucket>> {
    let rows = sqlx::query_as(
        "SELECT to_timestamp(floor(extract(epoch FROM started_at) / $5) * $5) AS start, \
                count(*) AS attempts, \
                count(*) FILTER (WHERE outcome = 'success') AS succeeded, \
                count(*) FILTER (WHERE outcome <> 'success') AS failed, \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms, \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms \
         FROM attempts WHERE tenant_id = $1 AND id >= $2 AND started_at >= $3 AND started_at < $4 \
         GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant.uuid())
    .bind(id_floor(since))
    .bind(since)
    .bind(until)
    .bind(bucket_seconds as f64)
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Past this many queued rows the pending gauge uses the planner's estimate (refreshed by the
/// queue's vacuum every few seconds) instead of counting.
const EXACT_COUNT_UP_TO: f32 = 100_000.0;

/// The fleet's pending deliveries and the creation time of the oldest, cheaply: an exact count
/// of the queue while it is small, else the planner's estimate; the oldest from one index probe
/// per tenant (the queue's key leads with the tenant and the time-ordered delivery id).
pub async fn pending_overview(db: impl PgExecutor<'_>) -> Result<(i64, Option<OffsetDateTime>)> {
    let (count, oldest): (i64, Option<Uuid>) = sqlx::query_as(
        "SELECT (SELECT CASE WHEN c.reltuples > $1 THEN c.reltuples::bigint \
                     ELSE (SELECT count(*) FROM delivery_queue) END \
                 FROM pg_class c WHERE c.oid = 'delivery_queue'::regclass), \
                (SELECT first.delivery_id FROM tenants t CROSS JOIN LATERAL ( \
                     SELECT q.delivery_id FROM delivery_queue q WHERE q.tenant_id = t.id \
                     ORDER BY q.delivery_id LIMIT 1) first ORDER BY 1 LIMIT 1)",
    )
    .bind(EXACT_COUNT_UP_TO)
    .fetch_one(db)
    .await?;
    let oldest = oldest.and_then(|id| {
        let ms = (id.as_u128() >> 80) as i128;
        OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok()
    });
    Ok((count, oldest))
}
