//! The live event stream's store side (CONTRACT §8, `GET /v1/stream`). The store is the truth:
//! a stream reads the tenant's events after its cursor, in id order (event ids are UUIDv7, so
//! in acceptance order within a process). Postgres NOTIFY only says "look now": a process that
//! serves streams announces their tenants in Redis (a sorted set scored by expiry), ingest reads
//! that set once a second and, after a commit holding events of such a tenant, notifies
//! [`STREAM_CHANNEL`] with their ids. With no stream anywhere, ingest sends nothing.
//!
//! Invariant: a missed notification only delays an event (streams also poll), never loses it.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis;
use relay_core::{SourceId, TenantId};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;
use crate::events::EventRow;
use crate::redis::Redis;

/// Notified after a commit of events of streamed tenants; the payload is their ids, comma
/// separated (empty: "every tenant", when too many to list).
pub const STREAM_CHANNEL: &str = "wap_relay_events";
/// Postgres refuses payloads of 8,000 bytes or more: past this many tenants, the payload is empty.
const MAX_LISTED_TENANTS: usize = 150;

fn key(redis: &Redis) -> String {
    redis.key("streams")
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Says that this process streams events of `tenants` for the next `ttl` (best effort).
pub async fn announce(redis: &Redis, tenants: &[TenantId], ttl: Duration) {
    if tenants.is_empty() {
        return;
    }
    let until = unix_ms() + ttl.as_millis() as u64;
    let mut pipe = redis::pipe();
    let key = key(redis);
    for t in tenants {
        pipe.cmd("ZADD").arg(&key).arg("GT").arg(until).arg(t.uuid().simple().to_string()).ignore();
    }
    pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(unix_ms()).ignore();
    pipe.cmd("PEXPIRE").arg(&key).arg(ttl.as_millis() as u64 * 2).ignore();
    let _: Option<()> = redis.query_pipe(&pipe).await;
}

/// The tenants some process streams now; `None` when Redis is unavailable (then every commit
/// notifies: streams keep their latency, ingest pays a notification per batch).
pub async fn streamed(redis: &Redis) -> Option<HashSet<Uuid>> {
    let members: Vec<String> =
        redis.query(redis::cmd("ZRANGEBYSCORE").arg(key(redis)).arg(unix_ms()).arg("+inf")).await?;
    Some(members.iter().filter_map(|m| Uuid::parse_str(m).ok()).collect())
}

/// Tells every process's streams that events of `tenants` were committed.
pub async fn notify(db: impl PgExecutor<'_>, tenants: &[Uuid]) -> Result<()> {
    let payload = if tenants.len() > MAX_LISTED_TENANTS {
        String::new()
    } else {
        tenants.iter().map(|t| t.simple().to_string()).collect::<Vec<_>>().join(",")
    };
    sqlx::query("SELECT pg_notify($1, $2)").bind(STREAM_CHANNEL).bind(payload).execute(db).await?;
    Ok(())
}

/// Whether a notification's payload concerns `tenant`.
pub fn concerns(payload: &str, tenant: TenantId) -> bool {
    payload.is_empty() || payload.split(',').any(|t| Uuid::parse_str(t).is_ok_and(|t| t == tenant.uuid()))
}

/// The tenant's events with an id above `after`, oldest first, at most `limit`, of `source`
/// when given (type filters are applied by the caller: they are patterns).
pub async fn events_after(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    after: Uuid,
    source: Option<SourceId>,
    limit: i64,
) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, source_id, wap_event_id, type, device_id, \"timestamp\", received_at, body \
         FROM events WHERE tenant_id = $1 AND id > $2 AND ($3::uuid IS NULL OR source_id = $3) \
         ORDER BY id LIMIT $4",
    )
    .bind(tenant.uuid())
    .bind(after)
    .bind(source.map(|s| s.uuid()))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The smallest UUIDv7 of the millisecond `unix_ms` (a cursor "from then on").
pub fn cursor_at(unix_ms: u64) -> Uuid {
    let ms = unix_ms & 0xFFFF_FFFF_FFFF;
    Uuid::from_u128(u128::from(ms) << 80 | 0x7000 << 64 | 0x8000_0000_0000_0000)
}

/// The millisecond of a UUIDv7 cursor.
pub fn cursor_ms(cursor: Uuid) -> u64 {
    (cursor.as_u128() >> 80) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_order_like_the_ids_they_stand_for() {
        let id = Uuid::now_v7();
        let ms = cursor_ms(id);
        assert!(cursor_at(ms) <= id && id < cursor_at(ms + 1));
        assert_eq!(cursor_ms(cursor_at(1_700_000_000_123)), 1_700_000_000_123);
    }

    #[test]
    fn payloads_name_tenants_or_everyone() {
        let t = TenantId::new();
        assert!(concerns("", t));
        assert!(concerns(&format!("{},x", t.uuid().simple()), t));
        assert!(!concerns(&TenantId::new().uuid().simple().to_string(), t));
    }
}
