//! The `deliveries` table, the log of one event's delivery to one destination (its state as the
//! API shows it), and the writes that put deliveries (back) into `delivery_queue`.
//!
//! Invariant: a delivery is `pending` if and only if it has a queue row; every statement here
//! changes both together.

use relay_core::{DeliveryId, DestinationId, EventId, TenantId};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// The Postgres channel notified when new deliveries are due now; dispatchers LISTEN on it.
pub const WAKE_CHANNEL: &str = "wap_relay_deliveries";

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub destination_id: DestinationId,
    /// Queue the delivery leased to the caller for this long (its first attempt is the caller's);
    /// `None`: due now, for any dispatcher.
    pub lease_ms: Option<u32>,
    /// The ordering key (`DeliveryOrdering::device_key` of the destination and the event):
    /// a keyed delivery is attempted only as the head of its device, and never leased at ingest.
    pub device_key: Option<String>,
}

impl NewDelivery {
    /// A delivery due now, for any dispatcher.
    pub fn due_now(tenant_id: TenantId, event_id: EventId, destination_id: DestinationId) -> Self {
        Self { id: DeliveryId::new(), tenant_id, event_id, destination_id, lease_ms: None, device_key: None }
    }
}

/// Inserts pending deliveries of stored events (log and queue rows), due now for any
/// dispatcher (their `lease_ms` is not looked at: only ingest queues leased rows).
pub async fn insert_deliveries(db: impl PgExecutor<'_>, deliveries: &[NewDelivery]) -> Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let due: Vec<NewDelivery> =
        deliveries.iter().map(|d| NewDelivery { lease_ms: None, ..d.clone() }).collect();
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH ins AS (SELECT DISTINCT x.id, COALESCE(e.keep_days, 0::smallint) AS keep_days \
           FROM UNNEST($2::uuid[], $3::uuid[]) AS x(tenant_id, id) \
           LEFT JOIN events e ON e.tenant_id = x.tenant_id AND e.id = x.id), \
         {} SELECT count(*) FROM dq",
        crate::ingest::queue_sql(1)
    ));
    let q = sqlx::query_as::<_, (i64,)>(sql);
    crate::ingest::QueueColumns::of(&due, Uuid::nil()).bind(q).fetch_one(db).await?;
    Ok(())
}

/// Wakes the dispatchers when the surrounding transaction commits.
pub async fn notify_due(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(WAKE_CHANNEL).execute(db).await?;
    Ok(())
}

/// A Postgres snapshot (`pg_current_snapshot()`): which transactions a count saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    xmin: i64,
    xmax: i64,
    in_progress: Vec<i64>,
}

impl Snapshot {
    /// Parses `xmin:xmax:xip,…`.
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let in_progress = match parts.next()? {
            "" => Vec::new(),
            list => list.split(',').map(str::parse).collect::<Result<_, _>>().ok()?,
        };
        Some(Self { xmin, xmax, in_progress })
    }

    /// Whether what transaction `xact` committed is in what was read under this snapshot.
    pub fn sees(&self, xact: i64) -> bool {
        xact < self.xmin || (xact < self.xmax && !self.in_progress.contains(&xact))
    }
}

/// Each tenant's pending deliveries, counted up to its cap, in one statement (one result per
/// input, in order), and the statement's snapshot: a caller that stored deliveries meanwhile
/// tells with [`Snapshot::sees`] whether the counts include them.
pub async fn count_backlogs(
    db: impl PgExecutor<'_>,
    caps: &[(TenantId, i64)],
) -> Result<(Vec<i64>, Snapshot)> {
    let tenants: Vec<Uuid> = caps.iter().map(|(t, _)| t.uuid()).collect();
    let limits: Vec<i64> = caps.iter().map(|(_, c)| *c).collect();
    let (counts, snapshot): (Vec<i64>, String) = sqlx::query_as(
        "SELECT COALESCE((SELECT array_agg((SELECT count(*) FROM (SELECT 1 FROM delivery_queue q \
             WHERE q.tenant_id = t.id LIMIT t.cap) x) ORDER BY t.n) \
           FROM UNNEST($1::uuid[], $2::bigint[]) WITH ORDINALITY AS t(id, cap, n)), '{}'), \
           pg_current_snapshot()::text",
    )
    .bind(tenants)
    .bind(limits)
    .fetch_one(db)
    .await?;
    let snapshot = Snapshot::parse(&snapshot)
        .ok_or_else(|| crate::StoreError::Corrupt(format!("unreadable snapshot `{snapshot}`")))?;
    Ok((counts, snapshot))
}

/// Serialises additions to one tenant's backlog made outside ingest (the admin API's manual
/// work), until the transaction ends: each such request counts the backlog after its own
/// additions ([`count_backlogs`], in its transaction) and cannot pass the cap on a count another
/// one has not committed yet. Ingest does not take it (its backlog cache holds the cap).
pub async fn lock_backlog(db: impl PgExecutor<'_>, tenant: TenantId) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(BACKLOG_LOCK)
        .bind(tenant.uuid().simple().to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// The class of [`lock_backlog`]'s advisory locks ("wapb").
const BACKLOG_LOCK: i32 = 0x7761_7062;

/// A delivery as the admin API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub destination_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: relay_core::vocab::DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<time::OffsetDateTime>,
    #[sqlx(try_from = "String")]
    pub next_trigger: relay_core::vocab::Trigger,
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
    // Pending deliveries are the queue's rows: reached through its (tenant_id, delivery_id) key,
    // however long the finished history is.
    let from = if filter.status.as_deref() == Some("pending") {
        "(SELECT d.* FROM delivery_queue q JOIN deliveries d \
           ON d.tenant_id = q.tenant_id AND d.id = q.delivery_id) deliveries"
    } else {
        "deliveries"
    };
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {DELIVERY_COLUMNS} FROM {from} WHERE "));
    // A destination or event filter has its own index (`deliveries_destination`,
    // `deliveries_event`); otherwise the primary key (tenant_id, id).
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

/// The log columns of a delivery put back in the queue, due now (the trigger is set by the caller).
const REQUEUE: &str = "status = 'pending', next_attempt_at = now(), completed_at = NULL";

/// Queues (again) the rows of CTE `{from}` (`id`, `destination_id`, `event_id`, `attempts`,
/// `attempts_started`) with
/// `trigger`, due now with a fresh retry window. A row still queued (pending, perhaps in flight)
/// keeps its count of started attempts, so the next attempt never repeats an `X-Relay-Attempt`
/// number; its lease is cleared, so an attempt still in flight cannot overwrite the new state.
/// Each row gets the device key of its destination's current ordering: a redelivered or
/// replayed delivery of an ordered destination takes its place by its id, parked behind an
/// earlier queued row of its device (see `crate::ordering`).
fn enqueue_sql(from: &str, trigger: &str) -> String {
    let key = crate::ordering::device_key_sql("ds.ordering", "e.device_id");
    let due = crate::ordering::due_or_parked(
        "now()",
        "x.destination_id",
        "k.device_key",
        "x.id",
        "row_number() OVER (PARTITION BY x.destination_id, k.device_key ORDER BY x.id) > 1",
    );
    format!(
        "INSERT INTO delivery_queue (tenant_id, delivery_id, destination_id, event_id, due_at, \
           lease_token, \"trigger\", started, window_started_at, attempts_before_window, keep_days, \
           device_key) \
         SELECT $1, x.id, x.destination_id, x.event_id, {due}, NULL, '{trigger}', \
           greatest(x.attempts, x.attempts_started), now(), greatest(x.attempts, x.attempts_started), \
           x.keep_days, k.device_key \
         FROM {from} x LEFT JOIN LATERAL (SELECT {key} AS device_key FROM events e, destinations ds \
             WHERE e.tenant_id = $1 AND e.id = x.event_id AND ds.id = x.destination_id) k ON true \
         ON CONFLICT (tenant_id, delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, lease_token = NULL, \
           \"trigger\" = EXCLUDED.\"trigger\", window_started_at = now(), \
           attempts_before_window = delivery_queue.started, device_key = EXCLUDED.device_key"
    )
}

/// Locks the events of the deliveries being queued again (`FOR KEY SHARE`), so retention cannot
/// purge an event between our check and our commit; an event already purged is not found and its
/// delivery is not queued. An event past its class's retention is not found either: its slice may
/// be about to be dropped (`crate::partitions`). Followed by the ids to lock and the locking
/// clause.
const LOCK_EVENTS: &str = concat!(
    "SELECT e.id FROM events e WHERE e.tenant_id = $1 AND ",
    crate::within_retention!(),
    " AND e.id IN"
);

/// Locks the queue rows of the deliveries being queued again before their log rows (followed by
/// the condition on `delivery_id` and the locking clause): the recorder and the housekeeping lock
/// queue row first, log row second, and so must every other writer, or two of them deadlock.
const LOCK_QUEUED: &str = "SELECT delivery_id FROM delivery_queue WHERE tenant_id = $1 AND";

/// Puts one delivery (any status) back in the queue for a manual attempt now. `None` when the
/// delivery does not exist for this tenant or its destination has been deleted.
pub async fn redeliver_delivery(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DeliveryId,
) -> Result<Option<DeliveryRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH ev AS ({LOCK_EVENTS} (SELECT event_id FROM deliveries WHERE tenant_id = $1 AND id = $2) \
             FOR KEY SHARE), \
         lq AS ({LOCK_QUEUED} delivery_id = $2 FOR UPDATE), \
         upd AS (UPDATE deliveries d SET {REQUEUE}, next_trigger = 'manual' \
             WHERE d.tenant_id = $1 AND d.id = $2 AND d.event_id IN (SELECT id FROM ev) \
               AND (SELECT count(*) FROM lq) >= 0 \
               AND EXISTS (SELECT 1 FROM destinations t \
                 WHERE t.tenant_id = $1 AND t.id = d.destination_id AND t.deleted_at IS NULL) \
             RETURNING {DELIVERY_COLUMNS}, d.attempts_started, d.keep_days), \
         q AS ({}) \
         SELECT {DELIVERY_COLUMNS} FROM upd",
        enqueue_sql("upd", "manual")
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
         lq AS ({LOCK_QUEUED} delivery_id IN \
             (SELECT id FROM deliveries WHERE tenant_id = $1 AND event_id = $2) FOR UPDATE), \
         reset AS (UPDATE deliveries d SET {REQUEUE}, next_trigger = 'manual' FROM targets t \
             WHERE d.tenant_id = $1 AND d.event_id = $2 AND d.destination_id = t.destination_id \
               AND (SELECT count(*) FROM lq) >= 0 \
             RETURNING d.id, d.destination_id, d.event_id, d.attempts, d.attempts_started, d.keep_days), \
         created AS (INSERT INTO deliveries (id, tenant_id, event_id, destination_id, next_attempt_at, next_trigger) \
             SELECT t.new_id, $1, $2, t.destination_id, now(), 'manual' FROM targets t \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = $1 AND d.event_id = $2 \
                 AND d.destination_id = t.destination_id) \
             RETURNING id, destination_id, event_id, attempts, attempts_started, keep_days), \
         q AS ({}) \
         SELECT (SELECT count(*) FROM reset) + (SELECT count(*) FROM created)",
        enqueue_sql("(SELECT * FROM reset UNION ALL SELECT * FROM created)", "manual")
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
/// (`include_succeeded`) the succeeded ones too, and with `completed_since` only those finished
/// since then (a failing streak's, for replay on recovery). Pending deliveries are already
/// queued and stay as they are. Returns how many were queued.
pub async fn replay_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    destination: DestinationId,
    since: time::OffsetDateTime,
    until: time::OffsetDateTime,
    include_succeeded: bool,
    completed_since: Option<time::OffsetDateTime>,
) -> Result<u64> {
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH picked AS (SELECT id, event_id FROM deliveries \
             WHERE tenant_id = $1 AND destination_id = $2 AND id >= $3 AND id <= $4 \
               AND created_at >= $5 AND created_at < $6 \
               AND (status = 'failed' OR ($7 AND status = 'succeeded')) \
               AND ($8::timestamptz IS NULL OR completed_at >= $8)), \
         ev AS ({LOCK_EVENTS} (SELECT event_id FROM picked) FOR KEY SHARE), \
         upd AS (UPDATE deliveries d SET {REQUEUE}, next_trigger = 'replay' \
             WHERE d.tenant_id = $1 AND d.id IN (SELECT id FROM picked) \
               AND d.event_id IN (SELECT id FROM ev) AND d.status <> 'pending' \
             RETURNING d.id, d.destination_id, d.event_id, d.attempts, d.attempts_started, d.keep_days), \
         q AS ({}) \
         SELECT count(*) FROM upd",
        enqueue_sql("upd", "replay")
    ));
    let queued: i64 = sqlx::query_scalar(sql)
        .bind(tenant.uuid())
        .bind(destination.uuid())
        .bind(crate::keyset::id_floor(since))
        .bind(crate::keyset::id_ceiling(until))
        .bind(since)
        .bind(until)
        .bind(include_succeeded)
        .bind(completed_since)
        .fetch_one(db)
        .await?;
    Ok(u64::try_from(queued).unwrap_or(0))
}

/// Fails the pending deliveries of a destination that is being deleted, so they leave the
/// tenant's backlog at once.
pub async fn fail_pending_for_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    destination: DestinationId,
) -> Result<u64> {
    let done = sqlx::query(
        "WITH q AS (DELETE FROM delivery_queue WHERE tenant_id = $1 AND destination_id = $2 \
             RETURNING delivery_id) \
         UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, completed_at = now(), \
         last_error = 'the destination was deleted' \
         WHERE tenant_id = $1 AND id IN (SELECT delivery_id FROM q)",
    )
    .bind(tenant.uuid())
    .bind(destination.uuid())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_what_committed_before_it() {
        let s = Snapshot::parse("100:105:101,103").unwrap();
        assert!(s.sees(99) && s.sees(102) && s.sees(104));
        assert!(!s.sees(101) && !s.sees(103) && !s.sees(105) && !s.sees(200));
        assert_eq!(Snapshot::parse("7:7:"), Some(Snapshot { xmin: 7, xmax: 7, in_progress: vec![] }));
        assert_eq!(Snapshot::parse("x"), None);
    }
}
