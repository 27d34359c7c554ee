//! The dispatcher's side of `delivery_queue`: finding the destinations with due work, claiming
//! their due rows with a lease, giving leases back.
//!
//! Invariants: a claim is one set-based statement (`FOR UPDATE SKIP LOCKED`, so any number of
//! processes share the work without taking the same row); it moves `due_at` to the end of the
//! lease and stamps `lease_token`, so a row whose worker died becomes due again by itself; only
//! the holder of the current lease may apply an outcome or give the row back. Giving a lease back
//! never counts an attempt. A row held by per-device ordering (not its device's head, see
//! `crate::ordering`) is neither counted as due nor claimed. Rows of disabled or deleted destinations are never read by a claim:
//! they wait until the destination is enabled again. Only the queue is touched here; the log row
//! changes when an outcome is recorded.
//!
//! The dispatcher works across tenants: it selects rows by destination (which belongs to one
//! tenant), and every write also matches the row's `tenant_id`.

use relay_core::plan::{LimitOverrides, Limits, Plan};
use relay_core::{DeliveryId, DestinationId, EventId, TenantId};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::destinations::{DESTINATION_COLUMNS, DestinationRow};
use crate::error::{Result, StoreError};
use crate::ordering::HEAD_OF_DEVICE;

pub use relay_core::vocab::Trigger;

/// An enabled destination with due deliveries, its tenant's limits, and how many rows are due
/// (counted up to the cap the caller gave).
#[derive(Debug, Clone)]
pub struct DueDestination {
    pub destination: DestinationRow,
    pub limits: Limits,
    pub due: u32,
}

#[derive(FromRow)]
struct DueRow {
    #[sqlx(flatten)]
    destination: DestinationRow,
    tenant_plan: String,
    tenant_limits: Json<LimitOverrides>,
    due: i64,
}

/// The enabled destinations that have deliveries due now, except the ones the caller skips
/// (destinations at their in-flight cap, tenants known to be at their rate limit).
///
/// Cost: one index probe per destination with pending rows (a loose index scan of
/// `delivery_queue_due`) plus at most `min(count_cap, max_in_flight)` index entries per enabled
/// destination (the count is capped there), however large a backlog is.
pub async fn list_due_destinations(
    db: impl PgExecutor<'_>,
    count_cap: u32,
    skip_destinations: &[Uuid],
    skip_tenants: &[Uuid],
) -> Result<Vec<DueDestination>> {
    let sql = sqlx::AssertSqlSafe(due_sql());
    let rows: Vec<DueRow> = sqlx::query_as(sql)
        .bind(i64::from(count_cap))
        .bind(skip_destinations)
        .bind(skip_tenants)
        .fetch_all(db)
        .await?;
    rows.into_iter().map(due_destination).collect()
}

/// The statement of [`list_due_destinations`] (`$1` count cap, `$2` destinations and `$3`
/// tenants to skip).
pub(crate) fn due_sql() -> String {
    format!(
        "WITH RECURSIVE t(destination_id) AS ( \
           (SELECT destination_id FROM delivery_queue ORDER BY destination_id LIMIT 1) \
           UNION ALL \
           SELECT (SELECT q.destination_id FROM delivery_queue q \
                   WHERE q.destination_id > t.destination_id \
                   ORDER BY q.destination_id LIMIT 1) \
           FROM t WHERE t.destination_id IS NOT NULL \
         ), due AS ( \
           SELECT ds.id AS due_id, c.n AS due FROM t \
           JOIN destinations ds ON ds.id = t.destination_id AND ds.enabled AND NOT ds.paused \
             AND ds.deleted_at IS NULL \
             AND ds.id <> ALL($2) AND ds.tenant_id <> ALL($3) \
           CROSS JOIN LATERAL (SELECT count(*) AS n FROM ( \
               SELECT 1 FROM delivery_queue q WHERE q.destination_id = ds.id \
               AND q.due_at <= now() AND {HEAD_OF_DEVICE} \
               ORDER BY q.due_at LIMIT LEAST($1, ds.max_in_flight)) x) c \
           WHERE c.n > 0 \
         ) \
         SELECT {DESTINATION_COLUMNS}, due.due, te.plan AS tenant_plan, te.limits AS tenant_limits \
         FROM due JOIN destinations ON destinations.id = due.due_id \
         JOIN (SELECT id AS te_id, plan, limits FROM tenants WHERE status = 'active') te \
           ON te.te_id = destinations.tenant_id"
    )
}

/// The destinations among `ids` that can be attempted now (enabled, not paused, not deleted,
/// tenant active),
/// with their tenant's limits; `due` is 0. For attempts handed over by ingest.
pub async fn find_usable_destinations(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<DueDestination>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DESTINATION_COLUMNS}, 0::bigint AS due, te.plan AS tenant_plan, te.limits AS tenant_limits \
         FROM destinations JOIN (SELECT id AS te_id, plan, limits FROM tenants WHERE status = 'active') te \
           ON te.te_id = destinations.tenant_id \
         WHERE destinations.id = ANY($1) AND destinations.enabled AND NOT destinations.paused \
           AND destinations.deleted_at IS NULL"
    ));
    let rows: Vec<DueRow> = sqlx::query_as(sql).bind(ids).fetch_all(db).await?;
    rows.into_iter().map(due_destination).collect()
}

fn due_destination(r: DueRow) -> Result<DueDestination> {
    let plan: Plan = r.tenant_plan.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?;
    Ok(DueDestination {
        destination: r.destination,
        limits: plan.limits().with(&r.tenant_limits.0),
        due: u32::try_from(r.due).unwrap_or(u32::MAX),
    })
}

/// How many due rows to claim from one destination, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    pub destination_id: DestinationId,
    pub count: u32,
    pub lease_ms: u32,
}

/// A claimed delivery with what its attempt needs. `event` is `None` only if the event is no
/// longer stored.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub destination_id: DestinationId,
    /// This attempt's number (`X-Relay-Attempt`): attempts started before it, plus one.
    pub number: i32,
    pub trigger: Trigger,
    /// Start of the retry window: ingest time, or the last redelivery/replay.
    pub window_start: OffsetDateTime,
    /// Attempts started before the window started (the backoff counts only those since).
    pub attempts_before_window: i32,
    pub lease_token: Uuid,
    pub event: Option<ClaimedEvent>,
}

#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    pub wap_event_id: String,
    pub event_type: String,
    pub body: bytes::Bytes,
}

#[derive(FromRow)]
struct ClaimRow {
    delivery_id: Uuid,
    tenant_id: Uuid,
    event_id: Uuid,
    destination_id: Uuid,
    started: i32,
    #[sqlx(try_from = "String")]
    trigger: Trigger,
    window_started_at: OffsetDateTime,
    attempts_before_window: i32,
    wap_event_id: Option<String>,
    event_type: Option<String>,
    body: Option<Vec<u8>>,
}

/// Claims up to `count` due rows of each requested destination, oldest due first, under one new
/// lease token, skipping rows another process holds locked and ordered rows that are not their
/// device's head (`crate::ordering`). Returns what was claimed (possibly
/// fewer than asked).
pub async fn claim_deliveries(
    db: impl PgExecutor<'_>,
    requests: &[ClaimRequest],
    lease_token: Uuid,
) -> Result<Vec<ClaimedDelivery>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let destinations: Vec<Uuid> = requests.iter().map(|r| r.destination_id.uuid()).collect();
    let counts: Vec<i32> = requests.iter().map(|r| i32::try_from(r.count).unwrap_or(i32::MAX)).collect();
    let leases: Vec<i64> = requests.iter().map(|r| i64::from(r.lease_ms)).collect();
    let sql = sqlx::AssertSqlSafe(claim_sql());
    let rows: Vec<ClaimRow> = sqlx::query_as(sql)
        .bind(destinations)
        .bind(counts)
        .bind(leases)
        .bind(lease_token)
        .fetch_all(db)
        .await?;
    let claimed = rows
        .into_iter()
        .map(|r| {
            let event = match (r.wap_event_id, r.event_type, r.body) {
                (Some(wap_event_id), Some(event_type), Some(body)) => {
                    Some(ClaimedEvent { wap_event_id, event_type, body: body.into() })
                }
                _ => None,
            };
            ClaimedDelivery {
                id: DeliveryId::from_uuid(r.delivery_id),
                tenant_id: TenantId::from_uuid(r.tenant_id),
                event_id: EventId::from_uuid(r.event_id),
                destination_id: DestinationId::from_uuid(r.destination_id),
                number: r.started,
                trigger: r.trigger,
                window_start: r.window_started_at,
                attempts_before_window: r.attempts_before_window,
                lease_token,
                event,
            }
        })
        .collect();
    Ok(claimed)
}

/// The statement of [`claim_deliveries`] (`$1..$3` destinations, counts and lease lengths,
/// `$4` the lease token). An ordered delivery's retry window starts at its first attempt: the
/// time it waited behind its device's head does not count against it.
pub(crate) fn claim_sql() -> String {
    format!(
        "WITH w AS ( \
           SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::bigint[]) AS w(destination_id, n, lease_ms) \
         ), picked AS ( \
           SELECT p.tenant_id, p.delivery_id, p.event_id, w.lease_ms FROM w CROSS JOIN LATERAL ( \
             SELECT q.tenant_id, q.delivery_id, q.event_id FROM delivery_queue q \
             WHERE q.destination_id = w.destination_id AND q.due_at <= now() AND {HEAD_OF_DEVICE} \
             ORDER BY q.due_at LIMIT w.n FOR UPDATE SKIP LOCKED) p \
         ) \
         UPDATE delivery_queue q \
         SET due_at = now() + p.lease_ms * interval '1 millisecond', lease_token = $4, \
             started = q.started + 1, \
             window_started_at = CASE WHEN q.device_key IS NOT NULL AND q.started = 0 THEN now() \
               ELSE q.window_started_at END \
         FROM picked p LEFT JOIN events e ON e.tenant_id = p.tenant_id AND e.id = p.event_id \
         WHERE q.tenant_id = p.tenant_id AND q.delivery_id = p.delivery_id \
         RETURNING q.delivery_id, q.tenant_id, q.event_id, q.destination_id, q.started, q.\"trigger\", \
                   q.window_started_at, q.attempts_before_window, \
                   e.wap_event_id, e.type AS event_type, e.body"
    )
}

/// A leased row to hand back, due again at `at` (now when `None`).
#[derive(Debug, Clone, Copy)]
pub struct Release {
    pub tenant_id: TenantId,
    pub id: DeliveryId,
    pub lease_token: Uuid,
    pub at: Option<OffsetDateTime>,
    /// The attempt may have been sent (cut off at shutdown): its number stays used. `false` for
    /// a lease given back before any request (a limit, a lane that could not start it).
    pub attempted: bool,
}

/// Gives leases back without counting an attempt (shutdown, or an attempt deferred by a limit).
/// A row whose lease has since passed to another holder is left alone. Returns the rows released.
pub async fn release_leases(db: impl PgExecutor<'_>, releases: &[Release]) -> Result<u64> {
    if releases.is_empty() {
        return Ok(0);
    }
    let tenants: Vec<Uuid> = releases.iter().map(|r| r.tenant_id.uuid()).collect();
    let ids: Vec<Uuid> = releases.iter().map(|r| r.id.uuid()).collect();
    let leases: Vec<Uuid> = releases.iter().map(|r| r.lease_token).collect();
    let ats: Vec<Option<OffsetDateTime>> = releases.iter().map(|r| r.at).collect();
    let attempted: Vec<bool> = releases.iter().map(|r| r.attempted).collect();
    // An attempt that was surely not made is not counted as started.
    let done = sqlx::query(
        "UPDATE delivery_queue q SET due_at = COALESCE(r.at, now()), lease_token = NULL, \
           started = CASE WHEN r.attempted THEN q.started ELSE greatest(q.started - 1, 0) END \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::bool[]) \
           AS r(tenant_id, id, lease_token, at, attempted) \
         WHERE q.tenant_id = r.tenant_id AND q.delivery_id = r.id AND q.lease_token = r.lease_token",
    )
    .bind(tenants)
    .bind(ids)
    .bind(leases)
    .bind(ats)
    .bind(attempted)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Fails leased rows that cannot be attempted at all (their event is no longer stored), without
/// counting an attempt.
pub async fn fail_leased(db: impl PgExecutor<'_>, leased: &[Release], reason: &str) -> Result<u64> {
    if leased.is_empty() {
        return Ok(0);
    }
    let tenants: Vec<Uuid> = leased.iter().map(|r| r.tenant_id.uuid()).collect();
    let ids: Vec<Uuid> = leased.iter().map(|r| r.id.uuid()).collect();
    let leases: Vec<Uuid> = leased.iter().map(|r| r.lease_token).collect();
    let done = sqlx::query(
        "WITH q AS (DELETE FROM delivery_queue q \
             USING UNNEST($1::uuid[], $2::uuid[], $3::uuid[]) AS r(tenant_id, id, lease_token) \
             WHERE q.tenant_id = r.tenant_id AND q.delivery_id = r.id AND q.lease_token = r.lease_token \
             RETURNING q.tenant_id, q.delivery_id, q.started) \
         UPDATE deliveries d SET status = 'failed', next_attempt_at = NULL, last_error = $4, \
           completed_at = now(), attempts_started = greatest(d.attempts_started, q.started) \
         FROM q WHERE d.tenant_id = q.tenant_id AND d.id = q.delivery_id",
    )
    .bind(tenants)
    .bind(ids)
    .bind(leases)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Fails the pending deliveries of deleted destinations (housekeeping: nothing can deliver them).
pub async fn fail_deliveries_of_deleted_destinations(db: impl PgExecutor<'_>) -> Result<u64> {
    let done = sqlx::query(
        "WITH q AS (DELETE FROM delivery_queue q USING destinations ds \
             WHERE ds.deleted_at IS NOT NULL AND q.destination_id = ds.id AND q.tenant_id = ds.tenant_id \
             RETURNING q.tenant_id, q.delivery_id, q.started) \
         UPDATE deliveries d SET status = 'failed', next_attempt_at = NULL, \
           last_error = 'the destination was deleted', completed_at = now(), \
           attempts_started = greatest(d.attempts_started, q.started) \
         FROM q WHERE d.tenant_id = q.tenant_id AND d.id = q.delivery_id",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Vacuums the queue, whose rows come and go thousands of times a second: its dead rows and
/// index entries slow every claim and scan until vacuum removes them, and autovacuum (when it
/// runs at all) is tuned for tables whose dead rows are a fraction, not the whole. Skips at once
/// when another process is vacuuming it.
pub async fn vacuum_queue(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query("VACUUM (SKIP_LOCKED) delivery_queue").execute(db).await?;
    Ok(())
}

/// The disabled (not deleted) destinations that still have pending deliveries, with their
/// tenant's limits (for the retry window): the housekeeping expires what has outlived it.
pub async fn list_disabled_with_pending(db: impl PgExecutor<'_>) -> Result<Vec<DueDestination>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DESTINATION_COLUMNS}, 0::bigint AS due, te.plan AS tenant_plan, te.limits AS tenant_limits \
         FROM destinations JOIN (SELECT id AS te_id, plan, limits FROM tenants) te \
           ON te.te_id = destinations.tenant_id \
         WHERE NOT destinations.enabled AND destinations.deleted_at IS NULL \
           AND EXISTS (SELECT 1 FROM delivery_queue q WHERE q.destination_id = destinations.id)"
    ));
    let rows: Vec<DueRow> = sqlx::query_as(sql).fetch_all(db).await?;
    rows.into_iter().map(due_destination).collect()
}

/// Fails the pending deliveries of a disabled destination whose retry window (`window_seconds`,
/// counted from ingest or the last redelivery) is over: the window keeps running while a
/// destination is disabled. They can be replayed like any failed delivery. Rows leased to an
/// attempt in flight are left to it. Each is reported (`relay.delivery.failed`).
pub async fn expire_disabled(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    destination: DestinationId,
    window_seconds: u64,
) -> Result<u64> {
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH q AS (DELETE FROM delivery_queue q WHERE q.tenant_id = $1 AND q.destination_id = $2 \
             AND (q.lease_token IS NULL OR q.due_at < now()) \
             AND q.window_started_at + $3 * interval '1 second' <= now() \
             AND EXISTS (SELECT 1 FROM destinations ds WHERE ds.id = $2 AND NOT ds.enabled) \
             RETURNING q.tenant_id, q.delivery_id, q.destination_id, q.event_id, q.keep_days, q.started), \
         upd AS (UPDATE deliveries d SET status = 'failed', next_attempt_at = NULL, completed_at = now(), \
           last_error = $4, attempts_started = greatest(d.attempts_started, q.started) \
           FROM q WHERE d.tenant_id = q.tenant_id AND d.id = q.delivery_id \
           RETURNING d.id, d.attempts, d.last_status_code), \
         fl AS (SELECT q.tenant_id, q.delivery_id, q.destination_id, q.event_id, \
           jsonb_build_object('attempts', upd.attempts, 'lastStatusCode', upd.last_status_code, \
             'lastError', $4::text) AS detail \
           FROM q JOIN upd ON upd.id = q.delivery_id), \
         {} \
         SELECT (SELECT count(*) FROM upd) + 0 * (SELECT n FROM failed_wake)",
        crate::outbox::failed_sql("fl")
    ));
    let done: i64 = sqlx::query_scalar(sql)
        .bind(tenant.uuid())
        .bind(destination.uuid())
        .bind(i64::try_from(window_seconds).unwrap_or(i64::MAX))
        .bind("the retry window ended while the destination was disabled")
        .fetch_one(db)
        .await?;
    Ok(u64::try_from(done).unwrap_or(0))
}
