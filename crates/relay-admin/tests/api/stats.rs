//! `GET /v1/tenant` (effective limits and usage) and `GET /v1/stats` (computed in SQL).

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::json;

use crate::support::TestApp;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn get_current_tenant_shows_effective_limits_and_usage(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("growth").await;
    app.patch(&format!("/v1/tenants/{}", t.id), &app.operator, json!({"limits": {"backlog": 5}})).await;
    let src = app.source(&t).await;
    let dst = app.destination(&t, json!({})).await;
    for e in app.events(&t, src, 3, "message.received").await {
        app.delivery(&t, e, dst).await;
    }
    let res = app.get("/v1/tenant", &t.token).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["id"], t.id.to_string());
    assert_eq!(res.body["plan"], "growth");
    assert_eq!(res.body["limits"]["backlog"], 5);
    assert_eq!(res.body["limits"]["destinations"], 10);
    assert_eq!(res.body["limit_overrides"], json!({"backlog": 5}));
    assert_eq!(res.body["usage"], json!({"sources": 1, "destinations": 1, "backlog": 3}));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn stats_count_by_status_with_success_rate_and_latency(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let d1 = app.destination(&t, json!({})).await;
    let d2 = app.destination(&t, json!({})).await;
    let events = app.events(&t, src, 4, "message.received").await;
    for (i, ms) in [100, 200, 300, 400].into_iter().enumerate() {
        let dlv = app.delivery(&t, events[i], d1).await;
        app.attempt(&t, dlv, d1, if i < 3 { "success" } else { "http_error" }, ms).await;
        app.finish(dlv, if i < 3 { "succeeded" } else { "failed" }).await;
    }
    app.delivery(&t, events[0], d2).await;

    let res = app.get("/v1/stats", &t.token).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["deliveries"], json!({"pending": 1, "succeeded": 3, "failed": 1}));
    assert_eq!(res.body["success_rate"], 0.75);
    assert_eq!(res.body["backlog"], 1);
    assert!(res.body["oldest_pending_age_seconds"].as_i64().unwrap() >= 0);
    let dests = res.body["destinations"].as_array().unwrap();
    let s1 = dests.iter().find(|d| d["destination_id"] == d1.to_string()).unwrap();
    assert_eq!(s1["deliveries"], json!({"pending": 0, "succeeded": 3, "failed": 1}));
    assert_eq!(s1["attempts"], 4);
    assert_eq!(s1["success_rate"], 0.75);
    assert_eq!(s1["latency_ms"]["p50"], 250.0);
    let p99 = s1["latency_ms"]["p99"].as_f64().unwrap();
    assert!((396.0..=400.0).contains(&p99), "{p99}");
    let s2 = dests.iter().find(|d| d["destination_id"] == d2.to_string()).unwrap();
    assert_eq!((s2["attempts"].as_i64(), s2["success_rate"].is_null()), (Some(0), true));

    let later = app.get("/v1/stats?since=2999-01-01T00:00:00Z", &t.token).await;
    assert_eq!(later.body["deliveries"], json!({"pending": 0, "succeeded": 0, "failed": 0}));
    assert_eq!(later.body["destinations"], json!([]));
    assert_eq!(later.body["backlog"], 1, "the backlog is counted whenever it was created");
    let res = app.get("/v1/stats?since=last-week", &t.token).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.detail().contains("since"));
    // Another tenant sees none of it.
    let other = app.tenant("pro").await;
    let theirs = app.get("/v1/stats", &other.token).await;
    assert_eq!(
        (theirs.body["backlog"].as_i64(), theirs.body["destinations"].as_array().unwrap().len()),
        (Some(0), 0)
    );
}

/// The fleet-wide pending gauges of `/metrics`: the queue counted, the oldest dated from its id.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn the_pending_overview_counts_every_tenants_queue_and_dates_the_oldest(pool: PgPool) {
    let app = TestApp::new(pool);
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let mut all = Vec::new();
    for _ in 0..2 {
        let t = app.tenant("pro").await;
        let src = app.source(&t).await;
        let dst = app.destination(&t, json!({})).await;
        for e in app.events(&t, src, 2, "message.received").await {
            all.push(app.delivery(&t, e, dst).await);
        }
    }
    app.finish(all[3], "succeeded").await;
    let (pending, oldest) = relay_store::stats::pending_overview(&app.pool).await.unwrap();
    assert_eq!(pending, 3);
    let oldest = oldest.expect("an oldest pending delivery");
    assert!(oldest >= before && oldest <= time::OffsetDateTime::now_utc(), "{oldest}");
    for d in &all[..3] {
        app.finish(*d, "succeeded").await;
    }
    assert_eq!(relay_store::stats::pending_overview(&app.pool).await.unwrap(), (0, None));
}

/// A statistics read that runs past the read pool's statement timeout answers 503
/// `query_timeout` with `Retry-After`, not a 500 (CONTRACT §10).
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_read_past_the_statement_timeout_answers_query_timeout(pool: PgPool) {
    let options = pool.connect_options();
    let config = relay_store::db::PoolConfig { max_connections: 2, ..Default::default() };
    let timed = relay_store::db::connect_reads(&options, &config, std::time::Duration::from_millis(1));
    let app = TestApp::with_reads(pool, relay_admin::ReadBudget::new(timed, 4));
    let t = app.tenant("pro").await;
    let dst = app.destination(&t, json!({})).await;
    app.many_attempts(&t, dst, 200_000).await;
    let res = app.get("/v1/stats", &t.token).await;
    assert_eq!(
        (res.status, res.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "query_timeout"),
        "{:?}",
        res.body
    );
    assert!(res.headers.contains_key("retry-after"));
    // Writes and light reads are not on that pool.
    assert_eq!(app.get(&format!("/v1/destinations/{dst}"), &t.token).await.status, StatusCode::OK);
}

/// A tenant runs at most 4 heavy reads at once in a process: the rest of a burst answers 429
/// `too_many_reads` with `Retry-After`, and another tenant's reads are not refused.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_tenants_burst_of_heavy_reads_is_bounded_and_leaves_others_alone(pool: PgPool) {
    let app = TestApp::new(pool);
    let (a, b) = (app.tenant("pro").await, app.tenant("pro").await);
    let dst = app.destination(&a, json!({})).await;
    app.many_attempts(&a, dst, 20_000).await;
    // 48 at once: 2 run, 32 wait their turn (a second at most), the other 14 are refused at once.
    let burst = (0..48).map(|_| app.get("/v1/stats", &a.token));
    let other = app.get("/v1/stats", &b.token);
    let (answers, theirs) = tokio::join!(futures::future::join_all(burst), other);
    let ok = answers.iter().filter(|r| r.status == StatusCode::OK).count();
    let refused: Vec<_> = answers.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    let statuses: Vec<_> = answers.iter().map(|r| r.status).collect();
    assert!(ok >= 2 && refused.len() >= 14 && ok + refused.len() == 48, "{statuses:?}");
    assert!(refused.iter().all(|r| r.code() == "too_many_reads" && r.headers.contains_key("retry-after")));
    assert_eq!(theirs.status, StatusCode::OK);
    // Once the burst has answered, the tenant reads again.
    assert_eq!(app.get("/v1/stats", &a.token).await.status, StatusCode::OK);
}
