//! The `deliveries` table: one event's delivery to one destination, its state and schedule.

use relay_core::{DeliveryId, DestinationId, EventId, TenantId};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// The Postgres channel notified when new deliveries are due now; dispatchers LISTEN on it.
pub const WAKE_CHANNEL: &str = "wap_relay_deliveries";

#[derive(Debug, Clone, Copy)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub destination_id: DestinationId,
}

/// Inserts pending deliveries, due now.
pub async fn insert_deliveries(db: impl PgExecutor<'_>, deliveries: &[NewDelivery]) -> Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id.uuid()).collect();
    let tenants: Vec<Uuid> = deliveries.iter().map(|d| d.tenant_id.uuid()).collect();
    let events: Vec<Uuid> = deliveries.iter().map(|d| d.event_id.uuid()).collect();
    let destinations: Vec<Uuid> = deliveries.iter().map(|d| d.destination_id.uuid()).collect();
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, event_id, destination_id, next_attempt_at) \
         SELECT d.id, d.tenant_id, d.event_id, d.destination_id, now() \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[]) AS d(id, tenant_id, event_id, destination_id)",
    )
    .bind(ids)
    .bind(tenants)
    .bind(events)
    .bind(destinations)
    .execute(db)
    .await?;
    Ok(())
}

/// Wakes the dispatchers when the surrounding transaction commits.
pub async fn notify_due(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(WAKE_CHANNEL).execute(db).await?;
    Ok(())
}

/// The tenant's pending deliveries, counted up to `cap` (enough to know the cap is reached without
/// counting a huge backlog in full).
pub async fn count_backlog(db: impl PgExecutor<'_>, tenant: TenantId, cap: i64) -> Result<i64> {
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE tenant_id = $1 AND status = 'pending' LIMIT $2) s",
    )
    .bind(tenant.uuid())
    .bind(cap)
    .fetch_one(db)
    .await?;
    Ok(n)
}

/// A delivery as the admin API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub destination_id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<time::OffsetDateTime>,
    pub next_trigger: String,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: time::OffsetDateTime,
    pub completed_at: Option<time::OffsetDateTime>,
}

const DELIVERY_COLUMNS: &str = "id, tenant_id, event_id, destination_id, status, attempts, next_attempt_at, \
     next_trigger, last_status_code, last_error, created_at, completed_at";

/// Filters of the delivery log; `range` applies to `created_at`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub destination_id: Option<DestinationId>,
    pub event_id: Option<EventId>,
    pub range: crate::keyset::TimeRange,
}

/// The tenant's deliveries, newest first, after `before` (a keyset cursor) when given.
pub async fn list_deliveries(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    filter: &DeliveryFilter,
    before: Option<DeliveryId>,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE "));
    // A destination or event filter has its own index (`deliveries_destination`,
    // `deliveries_event`); otherwise `deliveries_tenant`.
    let scan = if filter.destination_id.is_some() || filter.event_id.is_some() {
        crate::keyset::Scan::ByFilter
    } else {
        crate::keyset::Scan::ByTenant
    };
    crate::keyset::push_tenant(&mut q, tenant.uuid(), scan);
    if let Some(status) = &filter.status {
        q.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(d) = filter.destination_id {
        q.push(" AND destination_id = ").push_bind(d.uuid());
    }
    if let Some(e) = filter.event_id {
        q.push(" AND event_id = ").push_bind(e.uuid());
    }
    crate::keyset::push_range(&mut q, before.map(DeliveryId::uuid), "created_at", filter.range);
    crate::keyset::push_page_end(&mut q, limit, scan);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// One delivery of this tenant.
pub async fn find_delivery(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DeliveryId,
) -> Result<Option<DeliveryRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2"
    ));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}

/// Every delivery of one event, newest first (at most one per destination, so few).
pub async fn list_event_deliveries(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    event: EventId,
) -> Result<Vec<DeliveryRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND event_id = $2 ORDER BY id DESC"
    ));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(event.uuid()).fetch_all(db).await?)
}

/// The columns that put a delivery back in the queue, due now, with `trigger` for its next
/// attempt. Clearing the lease means an attempt still in flight cannot overwrite the new state.
/// Back in the queue, due now, with a fresh retry window.
const REQUEUE: &str = "status = 'pending', next_attempt_at = now(), completed_at = NULL, lease_token = NULL, \
     window_started_at = now(), attempts_before_window = attempts";

/// Locks the events of the deliveries being queued again (`FOR KEY SHARE`), so retention cannot
/// purge an event between our check and our commit; an event already purged is not found and its
/// delivery is not queued. Followed by the ids to lock and the locking clause.
const LOCK_EVENTS: &str = "SELECT e.id FROM events e WHERE e.id IN";

/// Puts one delivery (any status) back in the queue for a manual attempt now. `None` when the
/// delivery does not exist for this tenant or its destination has been deleted.
pub async fn redeliver_delivery(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DeliveryId,
) -> Result<Option<DeliveryRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH ev AS ({LOCK_EVENTS} (SELECT event_id FROM deliveries WHERE tenant_id = $1 AND id = $2) \
             FOR KEY SHARE) \
         UPDATE deliveries d SET {REQUEUE}, next_trigger = 'manual' \
         WHERE d.tenant_id = $1 AND d.id = $2 AND d.event_id IN (SELECT id FROM ev) \
           AND EXISTS (SELECT 1 FROM destinations t \
             WHERE t.tenant_id = $1 AND t.id = d.destination_id AND t.deleted_at IS NULL) \
         RETURNING {DELIVERY_COLUMNS}"
    ));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}

/// Queues a manual delivery of one event to each of `destinations`: an existing delivery to that
/// destination is put back in the queue, otherwise a new one is created. Returns how many were
/// queued. The caller holds the event's lock so two redeliveries cannot both create a delivery.
pub async fn redeliver_event(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    event: EventId,
    destinations: &[DestinationId],
) -> Result<i64> {
    let targets: Vec<Uuid> = destinations.iter().map(|d| d.uuid()).collect();
    let new_ids: Vec<Uuid> = destinations.iter().map(|_| DeliveryId::new().uuid()).collect();
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH targets AS (SELECT * FROM UNNEST($3::uuid[], $4::uuid[]) AS t(destination_id, new_id)), \
         reset AS (UPDATE deliveries d SET {REQUEUE}, next_trigger = 'manual' FROM targets t \
             WHERE d.tenant_id = $1 AND d.event_id = $2 AND d.destination_id = t.destination_id \
             RETURNING d.id), \
         created AS (INSERT INTO deliveries (id, tenant_id, event_id, destination_id, next_attempt_at, next_trigger) \
             SELECT t.new_id, $1, $2, t.destination_id, now(), 'manual' FROM targets t \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = $1 AND d.event_id = $2 \
                 AND d.destination_id = t.destination_id) \
             RETURNING id) \
         SELECT (SELECT count(*) FROM reset) + (SELECT count(*) FROM created)"
    ));
    let queued = sqlx::query_scalar(sql)
        .bind(tenant.uuid())
        .bind(event.uuid())
        .bind(targets)
        .bind(new_ids)
        .fetch_one(db)
        .await?;
    Ok(queued)
}

/// Queues again a destination's finished deliveries created in `range`: the failed ones, or
/// (`include_succeeded`) the succeeded ones too. Pending deliveries are already queued and stay as
/// they are. Returns how many were queued.
pub async fn replay_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    destination: DestinationId,
    since: time::OffsetDateTime,
    until: time::OffsetDateTime,
    include_succeeded: bool,
) -> Result<u64> {
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH picked AS (SELECT id, event_id FROM deliveries \
             WHERE tenant_id = $1 AND destination_id = $2 AND id >= $3 AND id <= $4 \
               AND created_at >= $5 AND created_at < $6 \
               AND (status = 'failed' OR ($7 AND status = 'succeeded'))), \
         ev AS ({LOCK_EVENTS} (SELECT event_id FROM picked) FOR KEY SHARE) \
         UPDATE deliveries SET {REQUEUE}, next_trigger = 'replay' \
         WHERE id IN (SELECT id FROM picked) AND event_id IN (SELECT id FROM ev)"
    ));
    let done = sqlx::query(sql)
        .bind(tenant.uuid())
        .bind(destination.uuid())
        .bind(crate::keyset::id_floor(since))
        .bind(crate::keyset::id_ceiling(until))
        .bind(since)
        .bind(until)
        .bind(include_succeeded)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Fails the pending deliveries of a destination that is being deleted, so they leave the
/// tenant's backlog at once.
pub async fn fail_pending_for_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    destination: DestinationId,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, completed_at = now(), \
         lease_token = NULL, last_error = 'the destination was deleted' \
         WHERE tenant_id = $1 AND destination_id = $2 AND status = 'pending'",
    )
    .bind(tenant.uuid())
    .bind(destination.uuid())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
