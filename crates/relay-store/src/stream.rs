//! The live event stream's store side (CONTRACT §8, `GET /v1/stream`). The store is the truth:
//! a stream reads the tenant's events after its cursor, in id order (event ids are UUIDv7, so
//! in acceptance order within a process). Postgres NOTIFY only says "look now": a process that
//! serves streams announces their tenants in Redis (a sorted set scored by expiry), ingest reads
//! that set once a second and, after a commit holding events of such a tenant, notifies
//! [`STREAM_CHANNEL`] with their ids. With no stream anywhere, ingest sends nothing.
//!
//! A read filters by source and type here, on the events' ids, sources and types only, and
//! reports how far it got ([`StreamPage::reached`]), so a stream moves past what its filter
//! skipped: a stream costs the same whether its filters match often or never.
//!
//! Invariant: a missed notification only delays an event (streams also poll), never loses it.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis;
use relay_core::filter::type_matches;
use relay_core::{SourceId, TenantId};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;
use crate::events::{EVENT_COLUMNS, EventRow};
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

/// What a stream wants: one source's events (`None`: every source) of these type patterns
/// (empty: every type, else a destination's patterns, `message.*`).
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    pub source: Option<SourceId>,
    pub types: Vec<String>,
}

impl StreamFilter {
    fn wants(&self, source: Uuid, event_type: &str) -> bool {
        self.source.is_none_or(|s| s.uuid() == source)
            && (self.types.is_empty() || self.types.iter().any(|p| type_matches(p, event_type)))
    }
}

/// One read of a stream: the events its filter wants, and how far the read got.
#[derive(Debug)]
pub struct StreamPage {
    /// Wanted events, oldest first.
    pub rows: Vec<EventRow>,
    /// Every event at or below this id (and above `after`) is in `rows` or skipped by the
    /// filter: the stream's next read starts here (`after` when nothing was read).
    pub reached: Uuid,
    /// How many of the tenant's events the read looked at (at most `scan`).
    pub scanned: usize,
    /// The read stopped at a bound (`page` wanted events or `scan` looked at): there may be more.
    pub more: bool,
}

/// The tenant's events with an id above `after`, oldest first: up to `page` events its filter
/// wants, found among at most `scan` of its events. Only the id, source and type of the events
/// looked at are read, and bodies only of those wanted, so a read costs at most `scan` index
/// entries whether the filter matches often or never, and the position moves past what the
/// filter skipped (a stream filtered to a quiet source does not read the same events again).
pub async fn events_after(
    pool: &sqlx::PgPool,
    tenant: TenantId,
    after: Uuid,
    filter: &StreamFilter,
    page: usize,
    scan: usize,
) -> Result<StreamPage> {
    let looked: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT id, source_id, type FROM events WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(tenant.uuid())
    .bind(after)
    .bind(i64::try_from(scan.max(1)).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    let mut wanted = Vec::new();
    let mut reached = after;
    for (id, source, event_type) in &looked {
        if wanted.len() == page.max(1) {
            break;
        }
        reached = *id;
        if filter.wants(*source, event_type) {
            wanted.push(*id);
        }
    }
    let more = looked.len() >= scan.max(1) || wanted.len() == page.max(1);
    let rows = if wanted.is_empty() {
        Vec::new()
    } else {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id"
        ));
        sqlx::query_as(sql).bind(tenant.uuid()).bind(&wanted).fetch_all(pool).await?
    };
    Ok(StreamPage { rows, reached, scanned: looked.len(), more })
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
