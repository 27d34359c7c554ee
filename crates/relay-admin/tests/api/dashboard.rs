//! The routes the dashboard needs beyond CONTRACT §5, as any client sees them: the attempts
//! series of the overview charts, sending a destination a test event, and the pages and assets
//! at `/ui/` (built into the binary, allowed to talk to this origin only).

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::json;

use crate::support::TestApp;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn the_series_buckets_attempts_with_outcomes_and_latency(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let d = app.destination(&t, json!({})).await;
    let events = app.events(&t, src, 3, "message.received").await;
    for (i, ms) in [100, 200, 900].into_iter().enumerate() {
        let dlv = app.delivery(&t, events[i], d).await;
        app.attempt(&t, dlv, d, if i < 2 { "success" } else { "http_error" }, ms).await;
    }
    let res = app.get("/v1/stats/series?bucket_seconds=3600", &t.token).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["bucket_seconds"], 3600);
    let buckets = res.body["buckets"].as_array().unwrap();
    let attempts: i64 = buckets.iter().map(|b| b["attempts"].as_i64().unwrap()).sum();
    let failed: i64 = buckets.iter().map(|b| b["failed"].as_i64().unwrap()).sum();
    assert_eq!((attempts, failed), (3, 1), "{buckets:?}");
    if buckets.len() == 1 {
        assert_eq!(buckets[0]["p50_ms"], 200.0);
    }
    // Another tenant sees none of them.
    let other = app.tenant("pro").await;
    let res = app.get("/v1/stats/series", &other.token).await;
    assert_eq!(res.body["buckets"], json!([]));
    // Too many buckets, or a window that ends before it starts: 422 naming the parameter.
    let res = app.get("/v1/stats/series?since=2026-01-01T00:00:00Z&bucket_seconds=1", &t.token).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.detail().contains("bucket_seconds"), "{}", res.detail());
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_test_event_is_queued_to_that_destination_only(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let d = app.destination(&t, json!({"event_types": ["message.*"]})).await;
    let other = app.destination(&t, json!({})).await;
    let res = app.post(&format!("/v1/destinations/{d}/test"), &t.token, json!({})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{:?}", res.body);
    let delivery = res.body["delivery_id"].as_str().unwrap().to_owned();
    let event = res.body["event_id"].as_str().unwrap().to_owned();
    let got = app.get(&format!("/v1/deliveries/{delivery}"), &t.token).await;
    assert_eq!(got.body["destination_id"], d.to_string());
    assert_eq!(got.body["status"], "pending");
    let got = app.get(&format!("/v1/events/{event}"), &t.token).await;
    assert_eq!(got.body["type"], "relay.test");
    assert_eq!(got.body["deliveries"].as_array().unwrap().len(), 1, "not to {other}");
    // Another tenant's destination is not found; a disabled one is refused.
    let stranger = app.tenant("pro").await;
    let res = app.post(&format!("/v1/destinations/{d}/test"), &stranger.token, json!({})).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    app.patch(&format!("/v1/destinations/{d}"), &t.token, json!({"enabled": false})).await;
    let res = app.post(&format!("/v1/destinations/{d}/test"), &t.token, json!({})).await;
    assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "destination_disabled"));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn the_dashboard_is_served_with_a_same_origin_policy(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app.call("GET", "/ui/", None, None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = res.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    let page = res.body.as_str().unwrap();
    assert!(!page.contains("http://") && !page.contains("https://"), "the page names no other host");
    // Revalidation: the same file answers 304 to its own ETag.
    let etag = res.headers["etag"].to_str().unwrap().to_owned();
    let req = axum::http::Request::get("/ui/")
        .header("if-none-match", &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::NOT_MODIFIED);
    let res = app.call("GET", "/ui/no-such-file.js", None, None).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = app.call("GET", "/ui", None, None).await;
    assert_eq!(res.status, StatusCode::PERMANENT_REDIRECT);
}
