//! Manual work counts like ingest (CONTRACT §10, issue 19 finding 9): test events, redelivery
//! and replay count against the tenant's backlog cap (429 `backlog_full`, nothing queued) and a
//! per-tenant admin rate limit shared by the fleet (429 `rate_limited`), both with `Retry-After`;
//! another tenant is not affected by either.

use axum::http::StatusCode;
use relay_admin::manual::MANUAL_BURST;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{Resp, Tenant, TestApp};

async fn backlog(app: &TestApp, t: &Tenant) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM delivery_queue WHERE tenant_id = $1")
        .bind(t.id.uuid())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn cap_backlog(app: &TestApp, t: &Tenant, cap: u64) {
    let res =
        app.patch(&format!("/v1/tenants/{}", t.id), &app.operator, json!({"limits": {"backlog": cap}})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
}

fn retry_after(res: &Resp) -> u64 {
    res.headers["retry-after"].to_str().unwrap().parse().unwrap()
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn test_events_past_the_backlog_cap_are_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let dst = app.destination(&t, json!({})).await;
    cap_backlog(&app, &t, 2).await;
    let path = format!("/v1/destinations/{dst}/test");
    let mut codes = Vec::new();
    for _ in 0..21 {
        let res = app.call("POST", &path, Some(&t.token), None).await;
        if res.status == StatusCode::ACCEPTED {
            codes.push("accepted".to_owned());
            continue;
        }
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", res.body);
        assert!(retry_after(&res) > 0);
        codes.push(res.code().to_owned());
    }
    assert_eq!(codes.iter().filter(|c| *c == "accepted").count(), 2, "{codes:?}");
    assert!(codes[..2].iter().all(|c| c == "accepted"), "{codes:?}");
    assert!(codes[2..20].iter().all(|c| c == "backlog_full"), "within the burst, the cap answers: {codes:?}");
    assert_eq!(backlog(&app, &t).await, 2, "21 test events against a cap of 2 queue 2");

    // Another tenant, with room, is not affected.
    let other = app.tenant("pro").await;
    let other_dst = app.destination(&other, json!({})).await;
    let res = app.call("POST", &format!("/v1/destinations/{other_dst}/test"), Some(&other.token), None).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{:?}", res.body);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn redelivery_and_replay_count_against_the_cap_and_a_replay_past_it_queues_nothing(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let dst = app.destination(&t, json!({})).await;
    let events = app.events(&t, src, 3, "message.received").await;
    let mut failed = Vec::new();
    for e in &events {
        let d = app.delivery(&t, *e, dst).await;
        app.finish(d, "failed").await;
        failed.push(d);
    }
    cap_backlog(&app, &t, 2).await;

    let replay = app
        .post(&format!("/v1/destinations/{dst}/replay"), &t.token, json!({"since": "2000-01-01T00:00:00Z"}))
        .await;
    assert_eq!((replay.status, replay.code()), (StatusCode::TOO_MANY_REQUESTS, "backlog_full"));
    assert!(retry_after(&replay) > 0);
    assert_eq!(backlog(&app, &t).await, 0, "a replay past the cap is refused whole");
    assert_eq!(app.delivery_state(failed[0]).await.0, "failed");

    let one =
        app.call("POST", &format!("/v1/deliveries/{}/redeliver", failed[0]), Some(&t.token), None).await;
    assert_eq!(one.status, StatusCode::ACCEPTED, "{:?}", one.body);
    let event = app.call("POST", &format!("/v1/events/{}/redeliver", events[1]), Some(&t.token), None).await;
    assert_eq!((event.status, event.body.clone()), (StatusCode::ACCEPTED, json!({"queued": 1})));
    assert_eq!(backlog(&app, &t).await, 2);
    let third =
        app.call("POST", &format!("/v1/deliveries/{}/redeliver", failed[2]), Some(&t.token), None).await;
    assert_eq!((third.status, third.code()), (StatusCode::TOO_MANY_REQUESTS, "backlog_full"));
    let again = app.call("POST", &format!("/v1/events/{}/redeliver", events[2]), Some(&t.token), None).await;
    assert_eq!((again.status, again.code()), (StatusCode::TOO_MANY_REQUESTS, "backlog_full"));
    assert_eq!(app.delivery_state(failed[2]).await.0, "failed", "nothing of a refused request is queued");
    assert_eq!(backlog(&app, &t).await, 2);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn manual_work_is_rate_limited_per_tenant(pool: PgPool) {
    let app = TestApp::new(pool);
    let (noisy, quiet) = (app.tenant("pro").await, app.tenant("pro").await);
    let (noisy_dst, quiet_dst) =
        (app.destination(&noisy, json!({})).await, app.destination(&quiet, json!({})).await);
    let path = format!("/v1/destinations/{noisy_dst}/test");
    let (mut accepted, mut limited) = (0, None);
    for _ in 0..2 * MANUAL_BURST {
        let res = app.call("POST", &path, Some(&noisy.token), None).await;
        match res.status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(res.code(), "rate_limited", "{:?}", res.body);
                limited = Some(retry_after(&res));
            }
            other => panic!("unexpected {other}: {:?}", res.body),
        }
    }
    assert!((MANUAL_BURST..2 * MANUAL_BURST).contains(&accepted), "{accepted} accepted");
    assert!(limited.is_some_and(|s| s >= 1), "past its burst the tenant is told to wait");
    let res = app.call("POST", &format!("/v1/destinations/{quiet_dst}/test"), Some(&quiet.token), None).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "another tenant is not limited: {:?}", res.body);
}
