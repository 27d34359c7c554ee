//! Retention: a tenant's events, deliveries, attempts and rejections older than its plan's
//! retention are deleted in bounded batches. A pending delivery is never purged, and neither is
//! the event it would deliver, whatever their age.

use relay_core::TenantId;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

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

const ATTEMPTS: &str = "DELETE FROM attempts WHERE id IN ( \
     SELECT id FROM attempts WHERE tenant_id = $1 AND id < $2 LIMIT $3)";
const REJECTIONS: &str = "DELETE FROM rejections WHERE id IN ( \
     SELECT id FROM rejections WHERE tenant_id = $1 AND id < $2 LIMIT $3)";
const DELIVERIES: &str = "DELETE FROM deliveries WHERE id IN ( \
     SELECT id FROM deliveries WHERE tenant_id = $1 AND id < $2 AND status <> 'pending' LIMIT $3)";
const EVENTS: &str = "DELETE FROM events WHERE id IN ( \
     SELECT e.id FROM events e WHERE e.tenant_id = $1 AND e.id < $2 \
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending') \
     LIMIT $3)";

/// Deletes what is older than `cutoff` (rows minted before it, by their time-ordered ids), `batch`
/// rows per statement, so no statement holds locks for long.
pub async fn purge_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
    cutoff: OffsetDateTime,
    batch: i64,
) -> Result<Purged> {
    // Ids embed their creation time; id_floor is conservative (it keeps a few minutes more).
    let below = id_floor(cutoff);
    let mut purged = Purged::default();
    for (sql, count) in [
        (ATTEMPTS, &mut purged.attempts),
        (REJECTIONS, &mut purged.rejections),
        (DELIVERIES, &mut purged.deliveries),
        (EVENTS, &mut purged.events),
    ] {
        loop {
            let done = sqlx::query(sql)
                .bind(tenant.uuid())
                .bind(below)
                .bind(batch)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            *count += done;
            if done < batch as u64 {
                break;
            }
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
    let mut conn = pool.acquire().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(SWEEP_LOCK).fetch_one(&mut *conn).await?;
    if !locked {
        return Ok(None);
    }
    let result = sweep(&mut conn).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(SWEEP_LOCK).execute(&mut *conn).await;
    result.map(Some)
}
