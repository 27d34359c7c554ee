//! Shedding when the write path cannot keep up: with the events table locked (a database that
//! stopped committing), requests queue for at most the queue's wait bound; past it new requests
//! are answered 503 `overloaded` with `Retry-After` at once, nothing is stored for them, and once
//! the database is back everything waiting is stored and ingest accepts again.

mod support;

use std::time::{Duration, Instant};

use relay_core::plan::Plan;
use relay_ingress::{IngressConfig, WriterConfig};
use relay_store::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use support::*;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_stuck_write_path_sheds_fast_503s_and_loses_nothing_it_accepted(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool: PgPool = pool.max_connections(8).connect_with(connect).await.unwrap();
    let writer = WriterConfig { max_wait: Duration::from_millis(100), ..WriterConfig::default() };
    let config = IngressConfig { writer, ..IngressConfig::default() };
    let h = Harness::start_with(pool, redis_at("redis://127.0.0.1:6379"), config).await;
    let (tenant, source) = h.setup(Plan::Growth).await;
    assert_eq!(h.post_signed(source, &event("warm")).await.status(), 200);

    let mut lock = h.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    // The first requests wait for the write; once the oldest has waited the bound, the rest are
    // refused at once.
    let mut requests = Vec::new();
    for i in 0..40u64 {
        let request = h.signed(source, event(&format!("e{i}")));
        requests.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            let started = Instant::now();
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"), started.elapsed())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while requests.iter().filter(|r| r.is_finished()).count() < 25 {
        assert!(Instant::now() < deadline, "requests past the bound were not answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lock.rollback().await.unwrap();
    let answers: Vec<(u16, bool, Duration)> =
        futures::future::join_all(requests).await.into_iter().map(|r| r.unwrap()).collect();
    let shed: Vec<_> = answers.iter().filter(|(s, ..)| *s == 503).collect();
    assert!(shed.len() >= 20, "requests past the bound are shed: {answers:?}");
    assert!(shed.iter().all(|(_, retry, took)| *retry && *took < Duration::from_millis(500)), "{shed:?}");
    assert!(answers.iter().all(|(s, ..)| *s == 200 || *s == 503), "{answers:?}");

    // Ingest accepts again, and nothing shed was stored.
    assert_eq!(h.post_signed(source, &event("after")).await.status(), 200);
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT wap_event_id FROM events WHERE tenant_id = $1 ORDER BY wap_event_id")
            .bind(tenant.uuid())
            .fetch_all(&h.pool)
            .await
            .unwrap();
    assert!(stored.contains(&"after".to_owned()) && stored.contains(&"warm".to_owned()));
    let accepted = answers.iter().filter(|(s, ..)| *s == 200).count();
    assert_eq!(stored.len(), 2 + accepted, "exactly the accepted events are stored: {stored:?}");
}

/// One tenant flooding the write queue with big events while the database does not commit: it
/// is refused once it holds the queue, and another tenant's small events are still let in and
/// stored (CONTRACT §10); nothing accepted is lost.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_tenant_flooding_the_write_queue_is_refused_and_the_others_are_not(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool: PgPool = pool.max_connections(8).connect_with(connect).await.unwrap();
    let writer =
        WriterConfig { max_wait: Duration::from_secs(30), queue_bytes: 2 << 20, ..WriterConfig::default() };
    let config = IngressConfig { writer, max_body_bytes: 1 << 20, ..IngressConfig::default() };
    let h = Harness::start_with(pool, redis_at("redis://127.0.0.1:6379"), config).await;
    let (loud, loud_source) = h.setup(Plan::Pro).await;
    let (quiet, quiet_source) = h.setup(Plan::Pro).await;
    assert_eq!(h.post_signed(quiet_source, &event("warm")).await.status(), 200);

    let mut lock = h.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let post = |source, body: String| {
        let request = h.signed(source, body);
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    let padding = "p".repeat(200_000);
    let big = |i: usize| {
        serde_json::json!({"eventId": format!("big{i}"), "type": "message.received",
            "timestamp": "2026-04-03T12:00:00Z", "padding": padding})
        .to_string()
    };
    // 60 events of 200 KB against a 2 MiB queue (and the two batches of about 1 MiB each that the
    // writers hold while the database does not commit): the loud tenant fills it, then is refused.
    let loud_posts: Vec<_> = (0..60).map(|i| post(loud_source, big(i))).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while loud_posts.iter().filter(|p| p.is_finished()).count() < 15 {
        assert!(Instant::now() < deadline, "the loud tenant was not refused past the bound");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The quiet tenant's events are let in: they wait for the commit with the rest (before,
    // they were refused at once with 503 like the loud tenant's).
    let quiet_posts: Vec<_> = (0..5).map(|i| post(quiet_source, event(&format!("q{i}")))).collect();
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        assert!(
            quiet_posts.iter().all(|p| !p.is_finished()),
            "a quiet event was answered while nothing commits"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.rollback().await.unwrap();

    let quiet_answers: Vec<u16> =
        futures::future::join_all(quiet_posts).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(quiet_answers, [200; 5]);
    let loud_answers: Vec<u16> =
        futures::future::join_all(loud_posts).await.into_iter().map(|r| r.unwrap()).collect();
    let refused = loud_answers.iter().filter(|s| **s == 503).count();
    assert!(refused >= 15 && loud_answers.iter().all(|s| *s == 200 || *s == 503), "{loud_answers:?}");
    assert_eq!(h.events(quiet).await, 6);
    assert_eq!(h.events(loud).await as usize, 60 - refused, "every accepted event is stored");
}
