//! Retention by rows: a tenant's rejections, and its events, deliveries and attempts that whole
//! partitions do not take away ([`crate::partitions`]: class 0, and classes longer than the
//! tenant's retention today, after a downgrade), older than its plan's retention, are deleted in
//! bounded batches. A pending delivery is never purged, and neither is the event it would
//! deliver, whatever their age.

use relay_core::TenantId;
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::keyset::id_floor;

/// Rows deleted by one pass over one tenant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub attempts: u64,
    pub rejections: u64,
    pub deliveries: u64,
    pub events: u64,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.attempts + self.rejections + self.deliveries + self.events
    }
}

// `$4` is the tenant's retention: rows of class 0, or of a longer class, go by rows; the others
// go with their partition.
const ATTEMPTS: &str = "DELETE FROM attempts WHERE tenant_id = $1 AND id IN ( \
     SELECT id FROM attempts WHERE tenant_id = $1 AND id < $2 AND (keep_days = 0 OR keep_days > $4) LIMIT $3)";
const REJECTIONS: &str = "DELETE FROM rejections WHERE id IN ( \
     SELECT id FROM rejections WHERE tenant_id = $1 AND id < $2 AND $4::smallint IS NOT NULL LIMIT $3)";
// The status is checked again outside the subquery: Postgres re-evaluates the outer condition on
// a row that a concurrent redelivery changed, so a delivery put back in the queue is kept.
const DELIVERIES: &str = "DELETE FROM deliveries WHERE tenant_id = $1 AND id IN ( \
     SELECT id FROM deliveries WHERE tenant_id = $1 AND id < $2 AND status <> 'pending' \
       AND (keep_days = 0 OR keep_days > $4) LIMIT $3) \
     AND status <> 'pending'";
// Events are purged in two statements of one transaction. The first locks candidates (skipping
// any that a redelivery holds with FOR KEY SHARE); the second runs on a fresh snapshot, so a
// delivery queued again meanwhile keeps its event. A redelivery that comes after the lock waits,
// then finds the event gone and queues nothing.
const EVENT_CANDIDATES: &str = "SELECT e.id FROM events e WHERE e.tenant_id = $1 AND e.id < $2 \
       AND (e.keep_days = 0 OR e.keep_days > $4) \
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending') \
     LIMIT $3 FOR UPDATE SKIP LOCKED";
// With each event go its dedupe keys (its eventId's, its dedupe id's).
const EVENTS: &str = "WITH gone AS ( \
       DELETE FROM events e WHERE e.tenant_id = $1 AND e.id = ANY($2) \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending') \
       RETURNING e.id, e.source_id, e.wap_event_id, e.dedupe_id \
     ), keys AS ( \
       DELETE FROM event_keys k USING ( \
         SELECT source_id, 'e:' || wap_event_id AS key FROM gone \
         UNION ALL SELECT source_id, dedupe_id FROM gone WHERE dedupe_id IS NOT NULL) g \
       WHERE k.source_id = g.source_id AND k.key = g.key RETURNING 1 \
     ) SELECT count(*) FROM gone";

/// Deletes what is older than `cutoff` (rows minted before it, by their time-ordered ids), `batch`
/// rows per statement, so no statement holds locks for long.
pub async fn purge_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
    cutoff: OffsetDateTime,
    retention_days: u32,
    batch: i64,
) -> Result<Purged> {
    // Ids embed their creation time; id_floor is conservative (it keeps a few minutes more).
    let below = id_floor(cutoff);
    let keep = crate::partitions::keep_days(retention_days);
    let mut purged = Purged::default();
    for (sql, count) in [
        (ATTEMPTS, &mut purged.attempts),
        (REJECTIONS, &mut purged.rejections),
        (DELIVERIES, &mut purged.deliveries),
    ] {
        loop {
            let done = sqlx::query(sql)
                .bind(tenant.uuid())
                .bind(below)
                .bind(batch)
                .bind(keep)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            *count += done;
            if done < batch as u64 {
                break;
            }
        }
    }
    loop {
        let mut tx = conn.begin().await?;
        let candidates: Vec<Uuid> = sqlx::query_scalar(EVENT_CANDIDATES)
            .bind(tenant.uuid())
            .bind(below)
            .bind(batch)
            .bind(keep)
            .fetch_all(&mut *tx)
            .await?;
        let done: i64 =
            sqlx::query_scalar(EVENTS).bind(tenant.uuid()).bind(&candidates).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        purged.events += u64::try_from(done).unwrap_or(0);
        if (candidates.len() as i64) < batch {
            break;
        }
    }
    Ok(purged)
}

/// Session advisory lock that makes one process of the fleet sweep at a time.
const SWEEP_LOCK: i64 = 0x7761_702d_7265_6c61; // "wap-rela"

/// Runs `sweep` on one connection while holding the fleet-wide sweep lock; `None` when another
/// process is sweeping.
pub async fn with_sweep_lock<T, F>(pool: &PgPool, sweep: F) -> Result<Option<T>>
where
    F: AsyncFnOnce(&mut PgConnection) -> Result<T>,
{
    // A connection of its own, closed at the end (or dropped on a panic): a session lock can
    // never go back to the pool still held.
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(SWEEP_LOCK).fetch_one(&mut conn).await?;
    if !locked {
        return Ok(None);
    }
    let result = sweep(&mut conn).await;
    let _ = conn.close().await;
    result.map(Some)
}
