//! A delivery's life around the edges: suspended tenants' deliveries wait, a redelivery gets a
//! fresh retry window, retention purges old rows but never pending ones, and a recovered
//! destination gets the deliveries of its failing streak again.

mod support;

use std::time::Duration;

use relay_store::tenants::{TenantStatus, TenantUpdate, update_tenant};
use relay_store::{PgPool, deliveries};
use support::*;
use uuid::Uuid;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_suspended_tenants_deliveries_wait_until_it_is_active(pool: PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let suspended = fx.tenant(None, None).await;
    let active = fx.tenant(None, None).await;
    let held = fx.destination(suspended, DestinationSpec::new(receiver.url("/held"))).await;
    let flowing = fx.destination(active, DestinationSpec::new(receiver.url("/flowing"))).await;
    let update = TenantUpdate { status: Some(TenantStatus::Suspended), ..TenantUpdate::default() };
    update_tenant(&fx.pool, suspended, &update).await.unwrap();
    fx.enqueue(&held, &[b"{\"n\":1}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    // The other tenant's later delivery is the barrier: rounds have run past the held one.
    fx.enqueue(&flowing, &[b"{\"n\":2}".to_vec()]).await;
    wait_for("the active tenant's delivery", Duration::from_secs(10), || async { receiver.count() >= 1 })
        .await;
    assert!(receiver.received().iter().all(|r| r.path == "/flowing"));
    assert_eq!(fx.deliveries(&held).await, vec![("pending".to_string(), 0)]);

    let update = TenantUpdate { status: Some(TenantStatus::Active), ..TenantUpdate::default() };
    update_tenant(&fx.pool, suspended, &update).await.unwrap();
    wait_for("the held delivery after reactivation", Duration::from_secs(10), || async {
        receiver.received().iter().any(|r| r.path == "/held")
    })
    .await;
    running.stop().await;
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_redelivery_starts_a_fresh_retry_window(pool: PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.status = 500);
    let tenant = fx.tenant(None, None).await;
    let spec = DestinationSpec { window_seconds: 60, ..DestinationSpec::new(receiver.url("/hook")) };
    let dest = fx.destination(tenant, spec).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    // The delivery was created long ago and has failed (so it left the queue): its original
    // window is over.
    sqlx::query(
        "WITH q AS (DELETE FROM delivery_queue WHERE destination_id = $1) \
         UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, attempts = 3, \
         created_at = now() - interval '1 hour' WHERE destination_id = $1",
    )
    .bind(dest.id.uuid())
    .execute(&fx.pool)
    .await
    .unwrap();
    let id: Uuid = sqlx::query_scalar("SELECT id FROM deliveries WHERE destination_id = $1")
        .bind(dest.id.uuid())
        .fetch_one(&fx.pool)
        .await
        .unwrap();
    let mut tx = fx.pool.begin().await.unwrap();
    let found = deliveries::redeliver_delivery(&mut *tx, tenant, relay_core::DeliveryId::from_uuid(id))
        .await
        .unwrap();
    assert!(found.is_some());
    deliveries::notify_due(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let running = start(&fx, test_redis(), test_config());
    wait_for("the manual attempt to be recorded", Duration::from_secs(10), || async {
        !fx.attempts(&dest).await.is_empty()
    })
    .await;
    // Attempt 4 failed and was scheduled again (not failed: the window is new), after the first
    // step of the backoff (100 ms ± 20%), not the fourth (800 ms): the schedule restarted too.
    let (number, trigger, wait_ms): (i32, String, Option<f64>) = sqlx::query_as(
        "SELECT number, trigger, EXTRACT(EPOCH FROM next_attempt_at - started_at)::float8 * 1000 \
         FROM attempts WHERE destination_id = $1 ORDER BY number LIMIT 1",
    )
    .bind(dest.id.uuid())
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert_eq!((number, trigger.as_str()), (4, "manual"));
    let wait_ms = wait_ms.expect("a retry is scheduled");
    assert!(wait_ms < 500.0, "the backoff restarted with the window, waited {wait_ms} ms");
    running.stop().await;
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn retention_purges_old_rows_but_never_pending_deliveries(pool: PgPool) {
    let fx = Fixture::new(pool);
    let tenant = fx.tenant(None, None).await; // growth: 7 days
    let dest = fx.destination(tenant, DestinationSpec::new("http://127.0.0.1:9/none".into())).await;
    let insert_event = |id: Uuid, n: i32| {
        let pool = fx.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO events (id, tenant_id, source_id, wap_event_id, type, \"timestamp\", body) \
                 VALUES ($1, $2, $3, $4, 't', now(), '\\x7b7d')",
            )
            .bind(id)
            .bind(tenant.uuid())
            .bind(Uuid::now_v7())
            .bind(format!("e{n}"))
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let insert_delivery = |id: Uuid, event: Uuid, status: &'static str| {
        let pool = fx.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO deliveries (id, tenant_id, event_id, destination_id, status, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'pending' THEN now() + interval '1 day' END)",
            )
            .bind(id)
            .bind(tenant.uuid())
            .bind(event)
            .bind(dest.id.uuid())
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let (old_done, old_pending, recent) = (uuid_days_ago(10), uuid_days_ago(10), Uuid::now_v7());
    insert_event(old_done, 1).await;
    insert_event(old_pending, 2).await;
    insert_event(recent, 3).await;
    insert_delivery(uuid_days_ago(10), old_done, "succeeded").await;
    insert_delivery(uuid_days_ago(10), old_pending, "pending").await;
    insert_delivery(Uuid::now_v7(), recent, "succeeded").await;
    sqlx::query(
        "INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
         duration_ms, url, outcome) VALUES ($1, $2, $3, $4, 1, 'auto', now(), 5, 'u', 'success')",
    )
    .bind(uuid_days_ago(10))
    .bind(tenant.uuid())
    .bind(Uuid::now_v7())
    .bind(dest.id.uuid())
    .execute(&fx.pool)
    .await
    .unwrap();

    let purged = relay_dispatcher::retention::sweep(&fx.pool).await.unwrap();
    assert_eq!(purged, 3, "one old attempt, one old finished delivery, its event");
    let events: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM events ORDER BY id").fetch_all(&fx.pool).await.unwrap();
    let mut expected = vec![old_pending, recent];
    expected.sort();
    assert_eq!(events, expected);
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM deliveries ORDER BY id").fetch_all(&fx.pool).await.unwrap();
    assert_eq!(statuses, ["pending", "succeeded"]);
    assert_eq!(relay_dispatcher::retention::sweep(&fx.pool).await.unwrap(), 0, "a second pass finds nothing");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_redelivery_racing_the_retention_sweep_is_kept(pool: PgPool) {
    let fx = Fixture::new(pool);
    let tenant = fx.tenant(None, None).await; // growth: 7 days
    let dest = fx.destination(tenant, DestinationSpec::new("http://127.0.0.1:9/none".into())).await;
    let (event, delivery) = (uuid_days_ago(10), uuid_days_ago(10));
    sqlx::query(
        "INSERT INTO events (id, tenant_id, source_id, wap_event_id, type, \"timestamp\", body) \
         VALUES ($1, $2, $3, 'old', 't', now(), '\\x7b7d')",
    )
    .bind(event)
    .bind(tenant.uuid())
    .bind(Uuid::now_v7())
    .execute(&fx.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, event_id, destination_id, status) VALUES ($1, $2, $3, $4, 'failed')",
    )
    .bind(delivery)
    .bind(tenant.uuid())
    .bind(event)
    .bind(dest.id.uuid())
    .execute(&fx.pool)
    .await
    .unwrap();

    // A redelivery is under way (not committed yet) when the sweep starts.
    let mut redelivery = fx.pool.begin().await.unwrap();
    let queued =
        deliveries::redeliver_delivery(&mut *redelivery, tenant, relay_core::DeliveryId::from_uuid(delivery))
            .await
            .unwrap();
    assert!(queued.is_some());
    let sweep = tokio::spawn({
        let pool = fx.pool.clone();
        async move { relay_dispatcher::retention::sweep(&pool).await.unwrap() }
    });
    wait_for("the sweep to wait on the redelivery's row", Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&fx.pool)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    redelivery.commit().await.unwrap();
    sweep.await.unwrap();

    let status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(&fx.pool)
        .await
        .unwrap();
    assert_eq!(status, "pending", "the queued delivery survived the sweep");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE id = $1")
        .bind(event)
        .fetch_one(&fx.pool)
        .await
        .unwrap();
    assert_eq!(kept, 1, "and so did its event");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_disabled_destinations_deliveries_fail_when_their_window_ends(pool: PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    let spec =
        DestinationSpec { enabled: false, window_seconds: 1, ..DestinationSpec::new(receiver.url("/hook")) };
    let dest = fx.destination(tenant, spec).await;
    fx.enqueue(&dest, &[b"{}".to_vec(), b"{}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("the deliveries to fail once their window is over", Duration::from_secs(10), || async {
        fx.count_status(&dest, "failed").await == 2
    })
    .await;
    running.stop().await;
    assert_eq!(receiver.count(), 0, "a disabled destination is never attempted");
    let errors: Vec<Option<String>> =
        sqlx::query_scalar("SELECT last_error FROM deliveries WHERE destination_id = $1")
            .bind(dest.id.uuid())
            .fetch_all(&fx.pool)
            .await
            .unwrap();
    assert!(errors.iter().all(|e| e.as_deref().is_some_and(|e| e.contains("disabled"))), "{errors:?}");
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM delivery_queue").fetch_one(&fx.pool).await.unwrap();
    assert_eq!(queued, 0, "nothing counts toward the backlog any more");
}

/// Replay on recovery: the deliveries that failed while a destination was failing are queued
/// once more (trigger `replay`) when it answers again, each once.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_recovered_destination_gets_its_failed_deliveries_again_once(pool: PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.status = 500);
    let tenant = fx.tenant(None, None).await;
    let spec = DestinationSpec {
        window_seconds: 1,
        replay_on_recovery: true,
        ..DestinationSpec::new(receiver.url("/hook"))
    };
    let dest = fx.destination(tenant, spec).await;
    let running = start(&fx, test_redis(), test_config());
    fx.enqueue(&dest, &[b"{\"n\":1}".to_vec(), b"{\"n\":2}".to_vec()]).await;
    wait_for("both deliveries to fail", Duration::from_secs(15), || async {
        fx.count_status(&dest, "failed").await == 2
    })
    .await;
    assert!(fx.destination_state(&dest).await.0, "still enabled, failing");

    receiver.script(|s| s.status = 200);
    fx.enqueue(&dest, &[b"{\"n\":3}".to_vec()]).await;
    wait_for("the recovery and the replay", Duration::from_secs(15), || async {
        fx.count_status(&dest, "succeeded").await == 3
    })
    .await;
    running.stop().await;
    let attempts = fx.attempts(&dest).await;
    let replays = attempts.iter().filter(|a| a.3 == "replay").count();
    assert_eq!(replays, 2, "each failed delivery replayed once: {attempts:?}");
    assert!(attempts.iter().filter(|a| a.3 == "replay").all(|a| a.2 == Some(200)));
}
