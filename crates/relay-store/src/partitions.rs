//! The partitions of the history tables (migration 0016). Each class (a retention in days) gets
//! its slices created ahead of need, by the ingest that is about to write into it and by the
//! sweeper; a slice whose rows are all past their retention is detached and dropped, after the
//! event and delivery rows of its pending deliveries are rescued to class 0, so they outlive it.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{PgConnection, PgExecutor};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::Result;

/// The condition (on an `events` row, unqualified columns) that it is still within its class's
/// retention: a redelivery or replay takes only such events, since an older one's slice may be
/// about to be dropped. A macro so the SQL texts that use it stay `concat!`-ed literals.
#[macro_export]
#[doc(hidden)]
macro_rules! within_retention {
    () => {
        "(keep_days = 0 OR id >= wap_relay_uuid_at(now() - keep_days * interval '1 day'))"
    };
}

/// How far ahead slices are created, and how close to that end a process creates more.
const AHEAD: Duration = Duration::days(2);
const RENEW: Duration = Duration::days(1);

/// Slices are dropped only this long after their last row's retention ended (ids are minted by
/// clocks that may differ a little from the database's).
const DROP_MARGIN: &str = "10 minutes";

/// Event keys deleted per statement when a slice goes.
const KEYS_PER_BATCH: i64 = 20_000;

/// The history class of a tenant's rows: its retention in days (0, keep everything, is the class
/// purged by rows).
pub fn keep_days(retention_days: u32) -> i16 {
    i16::try_from(retention_days).unwrap_or(i16::MAX)
}

/// Creates class `keep` and its slices covering `[since, upto]` where missing; returns how many
/// tables were created. Class 0 is one plain table, always there.
pub async fn ensure(
    db: impl PgExecutor<'_>,
    keep: i16,
    since: OffsetDateTime,
    upto: OffsetDateTime,
) -> Result<i32> {
    if keep <= 0 {
        return Ok(0);
    }
    let created = sqlx::query_scalar("SELECT wap_relay_ensure_partitions($1, $2, $3)")
        .bind(i32::from(keep))
        .bind(since)
        .bind(upto)
        .fetch_one(db)
        .await?;
    Ok(created)
}

/// What this process knows to exist: per class, the time its slices cover until. Writers call
/// [`Coverage::ensure`] before a batch; it asks Postgres only about once a day per class.
#[derive(Debug, Default)]
pub struct Coverage(Mutex<HashMap<i16, OffsetDateTime>>);

impl Coverage {
    pub async fn ensure(&self, pool: &sqlx::PgPool, keeps: impl IntoIterator<Item = i16>) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        let mut wanted: Vec<i16> = {
            let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
            keeps
                .into_iter()
                .filter(|k| *k > 0 && known.get(k).is_none_or(|until| *until < now + RENEW))
                .collect()
        };
        wanted.sort_unstable();
        wanted.dedup();
        for keep in wanted {
            ensure(pool, keep, now - Duration::days(1), now + AHEAD).await?;
            self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(keep, now + AHEAD);
        }
        Ok(())
    }
}

/// What one pass of [`drop_expired`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Tables dropped (a slice of one of the three history tables each).
    pub slices: u64,
    /// Event and delivery rows of pending deliveries moved to class 0 first.
    pub rescued: u64,
    /// Dedupe keys deleted with their events.
    pub keys: u64,
}

#[derive(Debug, sqlx::FromRow)]
struct Expired {
    parent: String,
    slice: String,
    keep: i16,
    lo: Uuid,
    hi: Uuid,
    state: String,
}

/// Drops every slice past its retention. Run by one process at a time (the sweep lock), on a
/// connection outside any transaction (a concurrent detach cannot run in one).
pub async fn drop_expired(conn: &mut PgConnection) -> Result<Dropped> {
    let expired: Vec<Expired> = sqlx::query_as(
        "SELECT parent, slice, keep::smallint, lo, hi, state FROM wap_relay_expired_partitions($1::interval)",
    )
    .bind(DROP_MARGIN)
    .fetch_all(&mut *conn)
    .await?;
    let mut done = Dropped::default();
    // The three tables' slices of one range go together: rescue, detach all, rescue what came
    // meanwhile, forget the keys, drop.
    for group in expired.chunk_by(|a, b| (a.keep, a.lo) == (b.keep, b.lo)) {
        let (keep, lo, hi) = (group[0].keep, group[0].lo, group[0].hi);
        if group.iter().any(|s| s.state == "attached") {
            done.rescued += rescue(&mut *conn, keep, lo, hi).await?;
        }
        for s in group.iter().filter(|s| s.state != "detached") {
            let finalize = if s.state == "pending" { "FINALIZE" } else { "CONCURRENTLY" };
            let sql = format!("ALTER TABLE \"{}\" DETACH PARTITION \"{}\" {finalize}", s.parent, s.slice);
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
        }
        for s in group.iter().filter(|s| !s.slice.starts_with("attempts")) {
            done.rescued += rescue_detached(&mut *conn, s, lo, hi).await?;
        }
        done.keys += forget_keys(&mut *conn, keep, lo, hi).await?;
        for s in group {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE \"{}\"", s.slice)))
                .execute(&mut *conn)
                .await?;
            done.slices += 1;
        }
    }
    Ok(done)
}

/// Moves to class 0 the events and deliveries of `[lo, hi)` in class `keep` that a queued
/// delivery still needs (a paused or long-retrying destination), with their dedupe keys.
async fn rescue(conn: &mut PgConnection, keep: i16, lo: Uuid, hi: Uuid) -> Result<u64> {
    let moved: i64 = sqlx::query_scalar(
        "WITH pend AS ( \
           SELECT tenant_id, delivery_id, event_id FROM delivery_queue \
           WHERE (delivery_id >= $2 AND delivery_id < $3) OR (event_id >= $2 AND event_id < $3) \
         ), ev AS ( \
           UPDATE events e SET keep_days = 0 FROM pend p \
           WHERE e.keep_days = $1 AND e.tenant_id = p.tenant_id AND e.id = p.event_id \
             AND e.id >= $2 AND e.id < $3 RETURNING e.id \
         ), ek AS ( \
           UPDATE event_keys k SET keep_days = 0 FROM ev WHERE k.keep_days = $1 AND k.event_id = ev.id \
         ), dl AS ( \
           UPDATE deliveries d SET keep_days = 0 FROM pend p \
           WHERE d.keep_days = $1 AND d.tenant_id = p.tenant_id AND d.id = p.delivery_id \
             AND d.id >= $2 AND d.id < $3 RETURNING 1 \
         ) \
         SELECT (SELECT count(*) FROM ev) + (SELECT count(*) FROM dl)",
    )
    .bind(keep)
    .bind(lo)
    .bind(hi)
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(moved).unwrap_or(0))
}

/// After the detach: a delivery queued again between the rescue and the detach (a redelivery
/// racing the sweep) gets its rows back from the detached table, in class 0.
async fn rescue_detached(conn: &mut PgConnection, s: &Expired, lo: Uuid, hi: Uuid) -> Result<u64> {
    let (parent, column) =
        if s.slice.starts_with("events") { ("events", "event_id") } else { ("deliveries", "delivery_id") };
    let mark = format!(
        "UPDATE \"{0}\" SET keep_days = 0 WHERE id IN \
           (SELECT {column} FROM delivery_queue WHERE {column} >= $1 AND {column} < $2)",
        s.slice
    );
    let marked =
        sqlx::query(sqlx::AssertSqlSafe(mark)).bind(lo).bind(hi).execute(&mut *conn).await?.rows_affected();
    if marked == 0 {
        return Ok(0);
    }
    // A pass cut short after this copy does it again: the rows already copied are skipped.
    let copy = format!(
        "INSERT INTO {parent} SELECT * FROM \"{}\" WHERE keep_days = 0 ON CONFLICT DO NOTHING",
        s.slice
    );
    sqlx::query(sqlx::AssertSqlSafe(copy)).execute(&mut *conn).await?;
    if parent == "events" {
        let keys = format!(
            "UPDATE event_keys SET keep_days = 0 WHERE event_id IN (SELECT id FROM \"{}\" WHERE keep_days = 0)",
            s.slice
        );
        sqlx::query(sqlx::AssertSqlSafe(keys)).execute(&mut *conn).await?;
    }
    Ok(marked)
}

/// Deletes the dedupe keys of class `keep` minted in `[lo, hi)`, in batches: the dedupe of an
/// event ends with the event. The range keeps each batch's index scan to the slice's own keys.
async fn forget_keys(conn: &mut PgConnection, keep: i16, lo: Uuid, hi: Uuid) -> Result<u64> {
    let mut total = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM event_keys WHERE (source_id, key) IN ( \
               SELECT source_id, key FROM event_keys \
               WHERE keep_days = $1 AND event_id >= $2 AND event_id < $3 LIMIT $4)",
        )
        .bind(keep)
        .bind(lo)
        .bind(hi)
        .bind(KEYS_PER_BATCH)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        total += done;
        if done < KEYS_PER_BATCH as u64 {
            return Ok(total);
        }
    }
}
