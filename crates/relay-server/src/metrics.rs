//! `GET /metrics` (CONTRACT §9) and `GET /readyz`. The Prometheus recorder is installed once per
//! process; histograms have fixed buckets (so a fleet's series aggregate); the pool gauge is
//! read at each scrape (no I/O); the pending gauges are refreshed every 15 s by processes that
//! run the dispatcher, from [`relay_store::stats::pending_overview`] (never a count per scrape).
//!
//! Every label is bounded: outcomes, reasons, queue names and pool states are fixed sets; no
//! label carries a tenant, destination or event.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use relay_store::{PgPool, Redis};
use serde_json::json;

const PENDING_EVERY: Duration = Duration::from_secs(15);
/// Seconds: an attempt, or an event's way from acceptance to its destination.
const SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Events per group commit.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process-wide Prometheus recorder (installed once, even when tests run several apps).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("relay_ingest_batch_size".into()), BATCH)
                })
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                register_families();
            }
            handle
        })
        .clone()
}

/// Ingest's outcomes and refusals that exist from the start (the others appear when they occur).
const INGEST_OUTCOMES: &[&str] = &["stored", "duplicate"];
const INGEST_REFUSALS: &[&str] = &[
    "invalid_signature",
    "invalid_json",
    "unsupported_media_type",
    "invalid_event",
    "payload_too_large",
    "source_not_found",
    "tenant_suspended",
    "plan_not_allowed",
    "rate_limited",
    "backlog_full",
    "overloaded",
];

/// Every family of CONTRACT §9 exported from the start, counters at 0 and histograms empty, so
/// alerts and `rate()` work before the first event (a family that appears only with its first
/// increment reads as "no data", not 0).
fn register_families() {
    for outcome in INGEST_OUTCOMES.iter().chain(INGEST_REFUSALS) {
        metrics::counter!("relay_ingest_requests_total", "outcome" => *outcome).increment(0);
    }
    for reason in INGEST_REFUSALS {
        metrics::counter!("relay_ingest_rejections_total", "reason" => *reason).increment(0);
    }
    for outcome in relay_core::vocab::AttemptOutcome::ALL {
        metrics::counter!("relay_delivery_attempts_total", "outcome" => outcome.as_str()).increment(0);
    }
    for counter in
        ["relay_events_stored_total", "relay_ingest_duplicates_total", "relay_rate_limit_deferrals_total"]
    {
        metrics::counter!(counter).increment(0);
    }
    for histogram in [
        "relay_ingest_batch_size",
        "relay_delivery_attempt_duration_seconds",
        "relay_delivery_latency_seconds",
    ] {
        let _ = metrics::histogram!(histogram);
    }
}

/// The exposition text, with the pool gauge and Redis's state read now (no I/O: Redis is down
/// for the second after a call to it failed).
pub fn render(handle: &PrometheusHandle, pool: &PgPool, redis: &Redis) -> String {
    let size = f64::from(pool.size());
    let idle = pool.num_idle() as f64;
    metrics::gauge!("relay_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("relay_db_pool_connections", "state" => "busy").set((size - idle).max(0.0));
    metrics::gauge!("relay_redis_up").set(if redis.is_available() { 1.0 } else { 0.0 });
    handle.render()
}

/// Keeps `relay_deliveries_pending` and `relay_oldest_pending_seconds` fresh until `pool` closes.
pub async fn keep_pending_gauges(pool: PgPool) {
    let mut every = tokio::time::interval(PENDING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        every.tick().await;
        match relay_store::stats::pending_overview(&pool).await {
            Ok((pending, oldest)) => {
                metrics::gauge!("relay_deliveries_pending").set(pending as f64);
                let age =
                    oldest.map_or(0.0, |t| (time::OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0));
                metrics::gauge!("relay_oldest_pending_seconds").set(age);
            }
            Err(e) => tracing::debug!(error = %e, "could not read the pending deliveries for the gauges"),
        }
    }
}

/// 200 when Postgres answers and every migration is applied, else 503; Redis's state is
/// reported, not fatal (the relay works without it, more slowly).
pub async fn readyz(State((pool, redis)): State<(PgPool, Redis)>) -> impl IntoResponse {
    let postgres = relay_store::db::ping(&pool).await.is_ok();
    let migrations = postgres && relay_store::db::migrations_applied(&pool).await.unwrap_or(false);
    let redis_up = redis.ping().await;
    let ready = postgres && migrations;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = |ok: bool, bad: &'static str| if ok { "ok" } else { bad };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "postgres": word(postgres, "unreachable"),
        "migrations": if postgres { word(migrations, "missing") } else { "unknown" },
        "redis": word(redis_up, "unavailable"),
    });
    (status, Json(body))
}
