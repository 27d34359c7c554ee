//! Silence alerts hear only accepted events (CONTRACT §7, §10): a flood of refused events on a
//! source with silence alerts leaves no trace in its watch rows, so it cannot make the relay
//! report (and queue deliveries for) `relay.*.silent` events of keys it never accepted.

mod support;

use std::time::Duration;

use relay_core::plan::{LimitOverrides, Plan};
use relay_ingress::IngressConfig;
use relay_store::PgPool;
use support::*;

/// The devices of the watch rows of `source` ('' is the source itself), sorted.
async fn watched(h: &Harness, source: relay_core::SourceId) -> Vec<String> {
    sqlx::query_scalar("SELECT device_id FROM silence_watch WHERE source_id = $1 ORDER BY device_id")
        .bind(source.uuid())
        .fetch_all(&h.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn refused_events_do_not_mark_a_source_or_device_active(pool: PgPool) {
    let config = IngressConfig { backlog_refresh: Duration::ZERO, ..IngressConfig::default() };
    let h = Harness::start_with(pool, redis_at("redis://127.0.0.1:6379"), config).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    sqlx::query("UPDATE sources SET silence_alert_seconds = 60 WHERE id = $1")
        .bind(source.uuid())
        .execute(&h.pool)
        .await
        .unwrap();
    h.destination(tenant, None, &["*"], None).await;
    h.set_limits(tenant, LimitOverrides { backlog: Some(2), ..LimitOverrides::default() }).await;
    for i in 0..2 {
        let body = event_of(&format!("ok_{i}"), "message.received", Some(&format!("dev_ok_{i}")));
        assert_eq!(h.post_signed(source, &body).await.status(), 200);
    }
    for i in 0..30 {
        let body = event_of(&format!("no_{i}"), "message.received", Some(&format!("dev_refused_{i}")));
        let (status, code, _) = problem(h.post_signed(source, &body).await).await;
        assert_eq!((status, code.as_str()), (429, "backlog_full"));
    }
    // The backlog drains; one more device is accepted, after every refused one was seen.
    sqlx::query(
        "WITH q AS (DELETE FROM delivery_queue WHERE tenant_id = $1) \
         UPDATE deliveries SET status = 'succeeded', next_attempt_at = NULL WHERE tenant_id = $1",
    )
    .bind(tenant.uuid())
    .execute(&h.pool)
    .await
    .unwrap();
    let last = event_of("last", "message.received", Some("dev_last"));
    eventually("ingest to resume", || async { h.post_signed(source, &last).await.status() == 200 }).await;
    // A flush writes everything seen up to it at once: once the last device is there, any
    // refused one would be too.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !watched(&h, source).await.contains(&"dev_last".to_owned()) {
        assert!(std::time::Instant::now() < deadline, "the accepted device was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(watched(&h, source).await, ["", "dev_last", "dev_ok_0", "dev_ok_1"]);
}

/// Watch rows expire: a key silent for [`FORGET_SILENT_AFTER`] is deleted by the silence scan,
/// a key silent for less is kept (so its return is still reported).
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn keys_silent_for_a_week_are_forgotten_by_the_scan(pool: PgPool) {
    use relay_store::silence::{FORGET_SILENT_AFTER, Seen, mark_silent, record_activity};
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    sqlx::query("UPDATE sources SET silence_alert_seconds = 60 WHERE id = $1")
        .bind(source.uuid())
        .execute(&h.pool)
        .await
        .unwrap();
    let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(90);
    let seen: Vec<Seen> = ["dev_old", "dev_recent"]
        .into_iter()
        .map(|d| Seen { tenant_id: tenant, source_id: source, device_id: Some(d.into()), at })
        .collect();
    record_activity(&h.pool, &seen).await.unwrap();
    let scan = || async {
        let mut tx = h.pool.begin().await.unwrap();
        let scanned = mark_silent(&mut tx, 1_000).await.unwrap().expect("the only scanner");
        tx.commit().await.unwrap();
        scanned
    };
    assert_eq!(scan().await, (2, 2), "both devices go silent");
    let long_ago = FORGET_SILENT_AFTER.as_secs() as i64 + 60;
    sqlx::query(
        "UPDATE silence_watch SET silent_since = now() - $2 * interval '1 second' WHERE device_id = $1",
    )
    .bind("dev_old")
    .bind(long_ago)
    .execute(&h.pool)
    .await
    .unwrap();
    assert_eq!(scan().await, (1, 0), "one key forgotten, none newly silent");
    assert_eq!(watched(&h, source).await, ["dev_recent"]);
}
