//! `purge`: retention over a large history, the two designs side by side. A fresh relay (every
//! role, default settings) gets `rows` history rows past its tenant's 7-day retention, written
//! straight into Postgres over the 14 days before that (a quarter events with their dedupe keys,
//! half deliveries, a quarter attempts), then one retention sweep runs while signed events are
//! posted at `rate` per second.
//!
//! - `drop`: the rows sit in their class's slices (migration 0016), which the sweep detaches and
//!   drops.
//! - `delete`: the same rows in class 0, which the sweep deletes in batches, row by row: what
//!   every row went through before partitioning.
//!
//! Prints the sweep's time, the WAL it wrote, and ingest's latency and failures while it ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use relay_core::{DestinationId, SourceId, TenantId};
use serde_json::json;
use sqlx::PgPool;

use crate::receiver::{self, Arrivals};
use crate::relay::{self, call, token};
use crate::report::Percentiles;
use crate::signed::{self, Answer};

/// Which retention design the history is stored for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Drop,
    Delete,
}

const RETENTION_DAYS: i16 = 7;

/// Events, then deliveries (two per event) and attempts (one per event), `events` of them, spread
/// over the 14 days that end 14 days ago. Ids are UUIDv7-shaped: the time, then hash bits.
const FILL: &str = "
CREATE TEMP TABLE g AS SELECT i, t,
    (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(i || 'e'), 1, 19))::uuid AS e,
    (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(i || 'd'), 1, 19))::uuid AS d1,
    (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(i || 'f'), 1, 19))::uuid AS d2,
    (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(i || 'a'), 1, 19))::uuid AS a
  FROM (SELECT i, now() - interval '28 days' + (i::float8 / $1) * interval '14 days' AS t
        FROM generate_series(1, $1::bigint) i) s;
INSERT INTO events (id, tenant_id, source_id, wap_event_id, type, device_id, \"timestamp\", received_at, body, keep_days)
  SELECT e, $2, $3, 'old' || i, 'message.received', 'dev_' || (i % 50), t, t, convert_to(repeat('x', 300), 'UTF8'), $6
  FROM g;
INSERT INTO event_keys (source_id, key, event_id, keep_days) SELECT $3, 'e:old' || i, e, $6 FROM g;
INSERT INTO deliveries (id, tenant_id, event_id, destination_id, status, attempts, created_at, completed_at, keep_days)
  SELECT d1, $2, e, $4, 'succeeded', 1, t, t, $6 FROM g
  UNION ALL SELECT d2, $2, e, $5, 'succeeded', 1, t, t, $6 FROM g;
INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, duration_ms, url,
                      outcome, status_code, keep_days)
  SELECT a, $2, d1, $4, 1, 'auto', t, 12, 'http://127.0.0.1/hook', 'success', 204, $6 FROM g;
";

pub async fn run(binary: &str, rows: u64, mode: Mode, rate: u32) -> anyhow::Result<()> {
    let db = relay::fresh_database();
    let prefix = format!("bench:purge:{}:", uuid::Uuid::new_v4().simple());
    let arrivals = Arc::new(Arrivals::new(Instant::now(), 0, 1, 2, 0));
    let hooks = receiver::start(arrivals).await?;
    let relay = relay::start_relay(binary, &db, "ingress,admin,dispatcher", &prefix).await?;
    let base = format!("http://127.0.0.1:{}", relay.port());
    let client = reqwest::Client::new();
    let urls = vec![format!("{hooks}/x/0"), format!("{hooks}/x/1")];
    let setup = relay::setup_tenant(&client, &base, "purge", &urls).await?;
    let limits = json!({"limits": {"retention_days": RETENTION_DAYS}});
    call(
        &client,
        reqwest::Method::PATCH,
        format!("{base}/v1/tenants/{}", setup.id),
        &token("operator", None),
        limits,
    )
    .await?;
    let pool = PgPool::connect(&db).await?;
    let events = rows / 4;
    let filled = Instant::now();
    fill(&pool, &setup, events, mode).await?;
    println!("filled {} rows ({events} events) in {:.0} s", events * 4, filled.elapsed().as_secs_f64());

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(post_at(client.clone(), setup.ingest_url.clone(), rate, stop.clone()));
    // The load settles before the sweep; the WAL it writes alone gives the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = (wal_lsn(&pool).await?, Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wal_before = wal_lsn(&pool).await?;
    let load_wal_per_s =
        wal_diff(&pool, &settled.0, &wal_before).await? as f64 / settled.1.elapsed().as_secs_f64();
    let started = Instant::now();
    let swept = relay_dispatcher::retention::sweep(&pool).await?;
    let sweep_time = started.elapsed();
    let wal = wal_diff(&pool, &wal_before, &wal_lsn(&pool).await?).await?;
    let load_wal = load_wal_per_s * sweep_time.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let answers = load.await?;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM events WHERE wap_event_id LIKE 'old%') \
              + (SELECT count(*) FROM deliveries d WHERE d.created_at < now() - interval '8 days')",
    )
    .fetch_one(&pool)
    .await?;
    print_report(mode, rows, swept, sweep_time, (wal, load_wal), left, &answers, started);
    pool.close().await;
    relay.stop().await?;
    relay::drop_database(&db).await;
    Ok(())
}

async fn fill(pool: &PgPool, setup: &relay::TenantSetup, events: u64, mode: Mode) -> anyhow::Result<()> {
    let keep = if mode == Mode::Drop { RETENTION_DAYS } else { 0 };
    let source = setup.ingest_url.rsplit('/').next().context("source id")?.parse::<SourceId>()?.uuid();
    let tenant = setup.id.parse::<TenantId>()?.uuid();
    let dests: Vec<uuid::Uuid> = setup
        .destination_ids
        .iter()
        .map(|d| d.parse::<DestinationId>().map(|d| d.uuid()))
        .collect::<Result<_, _>>()?;
    // Our own numbers and ids, formatted in: the fill is one multi-statement script on one
    // connection (its temporary table lives there).
    let script = format!(
        "SELECT wap_relay_ensure_partitions({RETENTION_DAYS}, now() - interval '30 days', now() + interval '2 days');\n{}",
        FILL.replace("$1", &events.to_string())
            .replace("$2", &format!("'{tenant}'::uuid"))
            .replace("$3", &format!("'{source}'::uuid"))
            .replace("$4", &format!("'{}'::uuid", dests[0]))
            .replace("$5", &format!("'{}'::uuid", dests[1]))
            .replace("$6", &format!("{keep}::smallint"))
    );
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut *conn).await?;
    // As a long-running database would be: statistics known, old pages clean on disk.
    sqlx::raw_sql("VACUUM ANALYZE events, deliveries, attempts, event_keys").execute(&mut *conn).await?;
    sqlx::raw_sql("CHECKPOINT").execute(&mut *conn).await?;
    Ok(())
}

async fn wal_diff(pool: &PgPool, from: &str, to: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::bigint")
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?)
}

async fn wal_lsn(pool: &PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SELECT pg_current_wal_lsn()::text").fetch_one(pool).await?)
}

/// Posts new signed events at `rate` per second until `stop`; each answer with when it was sent
/// and how long it took.
async fn post_at(
    client: reqwest::Client,
    url: String,
    rate: u32,
    stop: Arc<AtomicBool>,
) -> Vec<(Instant, f64, Answer)> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let (client, url) = (client.clone(), url.clone());
        sent.push(tokio::spawn(async move {
            let at = Instant::now();
            let answer = signed::post(&client, &url, &format!("live{n}"), "dev_live").await;
            (at, at.elapsed().as_secs_f64() * 1e3, answer)
        }));
    }
    let mut out = Vec::with_capacity(sent.len());
    for s in sent {
        if let Ok(a) = s.await {
            out.push(a);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    mode: Mode,
    rows: u64,
    swept: u64,
    took: Duration,
    (wal, load_wal): (i64, f64),
    left: i64,
    answers: &[(Instant, f64, Answer)],
    started: Instant,
) {
    let during: Vec<&(Instant, f64, Answer)> =
        answers.iter().filter(|(at, _, _)| *at >= started && *at <= started + took).collect();
    let failed = during.iter().filter(|(_, _, a)| !matches!(a, Answer::Stored)).count();
    let mut kinds = std::collections::BTreeMap::new();
    for (_, _, a) in during.iter().filter(|(_, _, a)| !matches!(a, Answer::Stored)) {
        *kinds.entry(format!("{a:?}")).or_insert(0) += 1;
    }
    let p = Percentiles::of(during.iter().map(|(_, ms, _)| *ms).collect());
    let before =
        Percentiles::of(answers.iter().filter(|(at, _, _)| *at < started).map(|(_, ms, _)| *ms).collect());
    println!("mode {mode:?}: {rows} history rows past retention");
    println!(
        "  sweep: {:.2} s, {swept} tables dropped + rows deleted, {left} old rows left",
        took.as_secs_f64()
    );
    println!(
        "  WAL written during the sweep: {:.1} MiB (of which the ingest load, at its rate before: ~{:.1} MiB)",
        wal as f64 / 1_048_576.0,
        load_wal / 1_048_576.0
    );
    println!(
        "  ingest during the sweep: {} posts, {failed} not stored {kinds:?}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        during.len(),
        p.p50,
        p.p99,
        p.max
    );
    println!(
        "  ingest before the sweep: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        before.p50, before.p99, before.max
    );
}
