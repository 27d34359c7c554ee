//! Silence alerts (CONTRACT §7, migration 0018): `silence_watch` holds, for each source with
//! `silence_alert_seconds` and each deviceId seen on it, when an event was last seen and when it
//! becomes silent (`deadline`). Ingest writes what it saw in batches, at most every few seconds
//! per key ([`record_activity`]); one process at a time looks up the deadlines that passed, by
//! their index ([`mark_silent`]): the cost grows with the keys that go silent, not with the keys
//! watched. A key silent for [`FORGET_SILENT_AFTER`] is forgotten by the same scan, so the
//! table stays bounded by the keys seen recently. Both report through the outbox in the statement that changes the row, so a key's
//! silence and its return are each reported once, across the fleet and across restarts.

use relay_core::operational::{DEVICE_RESUMED, DEVICE_SILENT, SOURCE_RESUMED, SOURCE_SILENT};
use relay_core::{SourceId, TenantId};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::outbox::OUTBOX_CHANNEL;

/// A key silent this long is forgotten (its row deleted by the scan, in batches, by the index
/// of migration 0020): seven days, longer than the shortest retention of any plan (3 days) and
/// a week of a device switched off over a weekend or a holiday. The table then holds at most the
/// keys seen in the last week plus an alert window, whatever a tenant sends; a key that comes
/// back after being forgotten starts afresh (no `resumed`, as for a key never seen).
pub const FORGET_SILENT_AFTER: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// Serialises the silence scans of a fleet ("wap-quie").
const SCAN_LOCK: i64 = 8_604_475_916_213_510_773;

/// An event seen: its source, its deviceId (`None`: the source itself), and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub tenant_id: TenantId,
    pub source_id: SourceId,
    pub device_id: Option<String>,
    pub at: OffsetDateTime,
}

/// The outbox type for a key going silent or coming back: `device_id = ''` is the source.
fn kind_sql(silent: &str, device: &str) -> String {
    format!("CASE WHEN device_id = '' THEN '{silent}' ELSE '{device}' END")
}

/// Records what ingest saw (one row per key: the caller merges repeats). Keys of sources without
/// silence alerts are ignored. A silent key seen after it went silent is reported resumed, once:
/// existing rows are locked and new ones inserted in key order (so two writers cannot deadlock),
/// and only the writer that clears `silent_since` reports it. A sighting from before the silence
/// (a flush retried late) only moves `last_seen`. Returns how many came back.
pub async fn record_activity(db: impl PgExecutor<'_>, seen: &[Seen]) -> Result<i64> {
    if seen.is_empty() {
        return Ok(0);
    }
    let tenants: Vec<Uuid> = seen.iter().map(|s| s.tenant_id.uuid()).collect();
    let sources: Vec<Uuid> = seen.iter().map(|s| s.source_id.uuid()).collect();
    let devices: Vec<&str> = seen.iter().map(|s| s.device_id.as_deref().unwrap_or("")).collect();
    let ats: Vec<OffsetDateTime> = seen.iter().map(|s| s.at).collect();
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH b AS ( \
           SELECT b.*, src.silence_alert_seconds * interval '1 second' AS quiet \
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) AS b(tenant_id, source_id, device_id, seen) \
           JOIN sources src ON src.id = b.source_id AND src.tenant_id = b.tenant_id \
           WHERE src.silence_alert_seconds IS NOT NULL AND src.deleted_at IS NULL \
         ), o AS ( \
           SELECT w.source_id, w.device_id, w.silent_since FROM silence_watch w \
           JOIN b ON b.source_id = w.source_id AND b.device_id = w.device_id \
           ORDER BY w.source_id, w.device_id FOR UPDATE OF w \
         ), u AS ( \
           UPDATE silence_watch w SET last_seen = greatest(w.last_seen, b.seen), \
             deadline = greatest(w.last_seen, b.seen) + b.quiet, \
             silent_since = CASE WHEN b.seen > o.silent_since THEN NULL ELSE o.silent_since END \
           FROM b JOIN o ON o.source_id = b.source_id AND o.device_id = b.device_id \
           WHERE w.source_id = b.source_id AND w.device_id = b.device_id \
           RETURNING w.tenant_id, w.source_id, w.device_id, o.silent_since AS was_silent, w.last_seen, \
             b.seen \
         ), n AS ( \
           INSERT INTO silence_watch (source_id, device_id, tenant_id, last_seen, deadline) \
           SELECT source_id, device_id, tenant_id, seen, seen + quiet FROM b \
           WHERE NOT EXISTS (SELECT 1 FROM o WHERE o.source_id = b.source_id AND o.device_id = b.device_id) \
           ORDER BY source_id, device_id \
           ON CONFLICT DO NOTHING \
         ), r AS ( \
           INSERT INTO relay_outbox (tenant_id, type, source_id, device_id, detail) \
           SELECT tenant_id, {}, source_id, NULLIF(device_id, ''), \
             jsonb_build_object('silentSince', was_silent, 'lastEventAt', last_seen) \
           FROM u WHERE seen > was_silent \
           RETURNING 1 \
         ) \
         SELECT count(*) FROM r, (SELECT count(pg_notify($5, '')) FROM (SELECT 1 FROM r LIMIT 1) one) wake",
        kind_sql(SOURCE_RESUMED, DEVICE_RESUMED)
    ));
    let back: (i64,) = sqlx::query_as(sql)
        .bind(tenants)
        .bind(sources)
        .bind(devices)
        .bind(ats)
        .bind(OUTBOX_CHANNEL)
        .fetch_one(db)
        .await?;
    Ok(back.0)
}

/// One scan, when no other process is scanning (`None` otherwise): marks silent up to `limit`
/// keys whose deadline passed and reports each, forgets the keys of sources whose alerts were
/// turned off or that were deleted, and up to `limit` keys silent for [`FORGET_SILENT_AFTER`].
/// Returns how many keys it looked at (`limit`: there may be more) and how many of them went
/// silent. Needs a transaction (the scan lock lasts until it ends).
pub async fn mark_silent(conn: &mut sqlx::PgConnection, limit: i64) -> Result<Option<(i64, i64)>> {
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SCAN_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if !leader {
        return Ok(None);
    }
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH due AS ( \
           SELECT w.source_id, w.device_id, src.silence_alert_seconds AS secs, src.deleted_at \
           FROM silence_watch w LEFT JOIN sources src ON src.id = w.source_id \
           WHERE w.silent_since IS NULL AND w.deadline <= now() \
           ORDER BY w.deadline LIMIT $1 FOR UPDATE OF w SKIP LOCKED \
         ), gone AS ( \
           DELETE FROM silence_watch w USING due \
           WHERE w.source_id = due.source_id AND w.device_id = due.device_id \
             AND (due.secs IS NULL OR due.deleted_at IS NOT NULL) \
         ), s AS ( \
           UPDATE silence_watch w SET silent_since = now() FROM due \
           WHERE w.source_id = due.source_id AND w.device_id = due.device_id \
             AND due.secs IS NOT NULL AND due.deleted_at IS NULL \
           RETURNING w.tenant_id, w.source_id, w.device_id, w.last_seen, due.secs \
         ), r AS ( \
           INSERT INTO relay_outbox (tenant_id, type, source_id, device_id, detail) \
           SELECT tenant_id, {}, source_id, NULLIF(device_id, ''), \
             jsonb_build_object('lastEventAt', last_seen, 'silenceAlertSeconds', secs) \
           FROM s RETURNING 1 \
         ), stale AS ( \
           SELECT source_id, device_id FROM silence_watch \
           WHERE silent_since IS NOT NULL AND silent_since < now() - $3 * interval '1 second' \
           ORDER BY silent_since LIMIT $1 FOR UPDATE SKIP LOCKED \
         ), forgot AS ( \
           DELETE FROM silence_watch w USING stale \
           WHERE w.source_id = stale.source_id AND w.device_id = stale.device_id RETURNING 1 \
         ) \
         SELECT greatest((SELECT count(*) FROM due), (SELECT count(*) FROM forgot)), count(*) FROM r, \
           (SELECT count(pg_notify($2, '')) FROM (SELECT 1 FROM r LIMIT 1) one) wake",
        kind_sql(SOURCE_SILENT, DEVICE_SILENT)
    ));
    let (looked, silent): (i64, i64) = sqlx::query_as(sql)
        .bind(limit)
        .bind(OUTBOX_CHANNEL)
        .bind(FORGET_SILENT_AFTER.as_secs() as i64)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some((looked, silent)))
}
