//! CONTRACT §3, row by row, through the real router against real Postgres and Redis.

mod support;

use std::time::Duration;

use relay_core::plan::{LimitOverrides, Plan};
use relay_core::verify::Verification;
use relay_ingress::IngressConfig;
use relay_store::tenants::{self, TenantStatus, TenantUpdate};
use relay_store::{PgPool, sources};
use serde_json::json;
use support::*;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn new_event_is_stored_with_its_deliveries(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    h.destination(tenant, None, &["message.*"], None).await;
    let body = event("evt_123");
    let response = h.post_signed(source, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), json!({"received": true}));
    assert_eq!(h.events(tenant).await, 1);
    assert_eq!(h.deliveries(tenant).await, 2);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE tenant_id = $1")
        .bind(tenant.uuid())
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(stored, body.as_bytes(), "the raw bytes are kept exactly");
    let pending: i64 = h
        .count("SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND status = 'pending' AND next_attempt_at <= now()", tenant)
        .await;
    assert_eq!(pending, 2);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn same_event_id_is_a_duplicate_and_delivers_nothing_new(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    assert_eq!(h.post_signed(source, &event("evt_1")).await.status(), 200);
    let again = h.post_signed(source, &event("evt_1")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap(), r#"{"received":true,"duplicate":true}"#, "the contract's body");
    assert_eq!((h.events(tenant).await, h.deliveries(tenant).await), (1, 1));
    // The same eventId on another source of the tenant is a different event.
    let other = h.source(tenant, Verification::default(), Some(SECRET)).await;
    let third = h.post_signed(other, &event("evt_1")).await;
    assert_eq!(third.json::<serde_json::Value>().await.unwrap(), json!({"received": true}));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn missing_or_wrong_signature_is_401_and_recorded(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let body = event("evt_1");
    let (status, code, problem_body) = problem(h.post_with(source, &body, &[]).await).await;
    assert_eq!((status, code.as_str()), (401, "invalid_signature"));
    assert!(problem_body["detail"].as_str().unwrap().contains("X-Wap-Signature"));
    let wrong = format!("sha256={}", hmac_hex("another-secret", body.as_bytes()));
    let (status, code, _) = problem(h.post_with(source, &body, &[("x-wap-signature", &wrong)]).await).await;
    assert_eq!((status, code.as_str()), (401, "invalid_signature"));
    let right = hmac_hex(SECRET, body.as_bytes());
    let truncated = format!("sha256={}", &right[..32]);
    let (status, _, _) = problem(h.post_with(source, &body, &[("x-wap-signature", &truncated)]).await).await;
    assert_eq!(status, 401);
    // Bare and upper-case hex are accepted.
    let upper = right.to_uppercase();
    assert_eq!(h.post_with(source, &body, &[("x-wap-signature", &upper)]).await.status(), 200);
    assert_eq!(h.events(tenant).await, 1);
    let reasons = h.rejections(tenant).await;
    assert_eq!(reasons, vec![("invalid_signature".to_string(), 401); 3]);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn rejections_keep_safe_headers_and_the_body_prefix_only(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let big_field = "x".repeat(10_000);
    let body = json!({"eventId": "e", "type": "a", "timestamp": "nope", "pad": big_field}).to_string();
    let sig = format!("sha256={}", hmac_hex(SECRET, body.as_bytes()));
    let response = h
        .post_with(
            source,
            &body,
            &[("x-wap-signature", &sig), ("authorization", "Bearer top"), ("cookie", "s=1")],
        )
        .await;
    let (status, code, _) = problem(response).await;
    assert_eq!((status, code.as_str()), (400, "invalid_event"));
    let (headers, stored, full): (serde_json::Value, Vec<u8>, i32) =
        sqlx::query_as("SELECT headers, body, body_bytes FROM rejections WHERE tenant_id = $1")
            .bind(tenant.uuid())
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert!(headers.get("authorization").is_none() && headers.get("cookie").is_none());
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(stored.len(), 4096);
    assert_eq!(full as usize, body.len());
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn bad_json_and_wrong_content_type(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let body = "{not json";
    let (status, code, _) = problem(h.post_signed(source, body).await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let text = event("evt_1");
    let sig = format!("sha256={}", hmac_hex(SECRET, text.as_bytes()));
    let response = h
        .client
        .post(h.url(source))
        .header("content-type", "text/plain")
        .header("x-wap-signature", sig)
        .body(text)
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem(response).await;
    assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
    assert_eq!(h.events(tenant).await, 0);
    let reasons: Vec<String> = h.rejections(tenant).await.into_iter().map(|r| r.0).collect();
    assert_eq!(reasons, ["invalid_json", "unsupported_media_type"]);
    // Valid JSON whose number is beyond a float's range is an event: its bytes are stored as sent.
    let big = r#"{"eventId":"evt_big","type":"a","timestamp":"2026-04-03T12:00:00Z","n":1e400}"#;
    assert_eq!(h.post_signed(source, big).await.status(), 200);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE tenant_id = $1")
        .bind(tenant.uuid())
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(stored, big.as_bytes());
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn schema_errors_name_the_field(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (_, source) = h.setup(Plan::Starter).await;
    let cases = [
        (json!({"type": "a", "timestamp": "2026-04-03T12:00:00Z"}), "eventId"),
        (json!({"eventId": "e", "type": "bad type", "timestamp": "2026-04-03T12:00:00Z"}), "type"),
        (json!({"eventId": "e", "type": "a", "timestamp": "12/03/2026"}), "timestamp"),
        (
            json!({"eventId": "e", "type": "a", "timestamp": "2026-04-03T12:00:00Z", "deviceId": 7}),
            "deviceId",
        ),
        (json!({"eventId": "x".repeat(257), "type": "a", "timestamp": "2026-04-03T12:00:00Z"}), "eventId"),
    ];
    for (body, field) in cases {
        let (status, code, problem_body) = problem(h.post_signed(source, &body.to_string()).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_event"), "{body}");
        assert!(problem_body["detail"].as_str().unwrap().starts_with(field), "{problem_body}");
    }
    // Unknown types and extra fields are accepted.
    let ok = json!({"eventId": "e", "type": "brand.new:type-1", "timestamp": "2026-04-03T12:00:00+02:00", "extra": [1]});
    assert_eq!(h.post_signed(source, &ok.to_string()).await.status(), 200);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn body_over_the_limit_is_413(pool: PgPool) {
    let config = IngressConfig { max_body_bytes: 1024, ..IngressConfig::default() };
    let h = Harness::start_with(pool, redis_at("redis://127.0.0.1:6379"), config).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let body =
        json!({"eventId": "e", "type": "a", "timestamp": "2026-04-03T12:00:00Z", "pad": "x".repeat(2000)});
    // Declared too long: refused without reading a byte of it.
    let (status, code, _) = problem(h.post_signed(source, &body.to_string()).await).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    assert_eq!(h.rejections(tenant).await, vec![("payload_too_large".to_string(), 413)]);
    // Without a Content-Length (chunked), the limit holds while reading, and the first bytes
    // are kept in the rejection.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(body.to_string().into_bytes())]);
    let response = h
        .client
        .post(h.url(source))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let prefix: Vec<u8> = sqlx::query_scalar(
        "SELECT body FROM rejections WHERE tenant_id = $1 ORDER BY received_at DESC LIMIT 1",
    )
    .bind(tenant.uuid())
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert!(prefix.starts_with(br#"{"eventId""#) && prefix.len() <= 4096, "the first bytes are kept");
    assert_eq!(h.events(tenant).await, 0);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_declared_oversized_body_is_refused_before_it_is_sent(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start(pool).await;
    let (_, source) = h.setup(Plan::Starter).await;
    let address = h.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/ingest/{source} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 2097152\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // No byte of the body is sent: the answer must come anyway, and be the 413, not 100 Continue.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("application/problem+json"), "{answer}");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn unknown_malformed_or_deleted_source_is_404(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let body = event("evt_1");
    let unknown = relay_core::SourceId::new();
    let (status, code, _) = problem(h.post_signed(unknown, &body).await).await;
    assert_eq!((status, code.as_str()), (404, "source_not_found"));
    let response =
        h.client.post(format!("{}/v1/ingest/not-an-id", h.base)).body(body.clone()).send().await.unwrap();
    assert_eq!(problem(response).await.0, 404);
    sources::delete_source(&h.pool, tenant, source).await.unwrap();
    let (status, code, _) = problem(h.post_signed(source, &body).await).await;
    assert_eq!((status, code.as_str()), (404, "source_not_found"));
    assert_eq!(h.events(tenant).await, 0);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn suspended_tenant_and_free_plan_are_403(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (free_tenant, free_source) = h.setup(Plan::Free).await;
    let (status, code, _) = problem(h.post_signed(free_source, &event("e1")).await).await;
    assert_eq!((status, code.as_str()), (403, "plan_not_allowed"));
    let (tenant, source) = h.setup(Plan::Growth).await;
    let update = TenantUpdate { status: Some(TenantStatus::Suspended), ..TenantUpdate::default() };
    tenants::update_tenant(&h.pool, tenant, &update).await.unwrap();
    let (status, code, _) = problem(h.post_signed(source, &event("e1")).await).await;
    assert_eq!((status, code.as_str()), (403, "tenant_suspended"));
    assert_eq!(h.events(tenant).await + h.events(free_tenant).await, 0);
    assert_eq!(h.rejections(free_tenant).await, vec![("plan_not_allowed".to_string(), 403)]);
    assert_eq!(h.rejections(tenant).await, vec![("tenant_suspended".to_string(), 403)]);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn backlog_at_the_cap_is_429_with_retry_after(pool: PgPool) {
    let config = IngressConfig { backlog_refresh: Duration::ZERO, ..IngressConfig::default() };
    let h = Harness::start_with(pool, redis_at("redis://127.0.0.1:6379"), config).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    h.set_limits(tenant, LimitOverrides { backlog: Some(2), ..LimitOverrides::default() }).await;
    assert_eq!(h.post_signed(source, &event("e1")).await.status(), 200);
    assert_eq!(h.post_signed(source, &event("e2")).await.status(), 200);
    let response = h.post_signed(source, &event("e3")).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0);
    let (status, code, _) = problem(response).await;
    assert_eq!((status, code.as_str()), (429, "backlog_full"));
    assert_eq!(h.events(tenant).await, 2);
    // Once deliveries complete (they leave the queue), the backlog drains and ingest resumes.
    sqlx::query(
        "WITH q AS (DELETE FROM delivery_queue WHERE tenant_id = $1) \
         UPDATE deliveries SET status = 'succeeded', next_attempt_at = NULL WHERE tenant_id = $1",
    )
    .bind(tenant.uuid())
    .execute(&h.pool)
    .await
    .unwrap();
    // Within the refresh interval (here as short as it goes).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.post_signed(source, &event("e3")).await.status() != 200 {
        assert!(std::time::Instant::now() < deadline, "ingest did not resume after the backlog drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn postgres_unreachable_is_503_never_2xx(pool: PgPool) {
    drop(pool);
    let options: sqlx::postgres::PgConnectOptions = "postgres://postgres@127.0.0.1:1/none".parse().unwrap();
    let config =
        relay_store::db::PoolConfig { max_connections: 2, acquire_timeout: Duration::from_millis(500) };
    let dead = relay_store::db::connect_lazy(options, &config);
    let h = Harness::start_with(dead, redis_at("redis://127.0.0.1:6379"), IngressConfig::default()).await;
    let source = relay_core::SourceId::new();
    for i in 0..3 {
        let response = h.post_signed(source, &event(&format!("e{i}"))).await;
        assert!(response.headers().contains_key("retry-after"));
        let (status, code, _) = problem(response).await;
        assert_eq!((status, code.as_str()), (503, "unavailable"));
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_write_that_cannot_commit_is_503_never_2xx(pool: PgPool) {
    use sqlx::Connection;
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    assert_eq!(h.post_signed(source, &event("before")).await.status(), 200);

    // From now on every new session of this database is read-only: sources still read, but no
    // event can be written. Existing sessions are ended so the service reconnects.
    let options = h.pool.connect_options();
    let mut admin = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut admin).await.unwrap();
    let alter = format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = on");
    sqlx::query(sqlx::AssertSqlSafe(alter)).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&db)
        .execute(&mut admin)
        .await
        .unwrap();

    for i in 0..3 {
        let response = h.post_signed(source, &event(&format!("read_only_{i}"))).await;
        assert!(response.headers().contains_key("retry-after"));
        let (status, code, _) = problem(response).await;
        assert_eq!((status, code.as_str()), (503, "unavailable"));
    }
    assert_eq!(h.events(tenant).await, 1, "nothing was stored, and nothing was acknowledged");

    let reset = format!("ALTER DATABASE \"{db}\" RESET default_transaction_read_only");
    sqlx::query(sqlx::AssertSqlSafe(reset)).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&db)
        .execute(&mut admin)
        .await
        .unwrap();
    eventually("ingest to recover", || async {
        h.post_signed(source, &event("after")).await.status() == 200
    })
    .await;
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn the_backlog_cap_holds_exactly_for_concurrent_requests(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    h.set_limits(tenant, LimitOverrides { backlog: Some(2), ..LimitOverrides::default() }).await;
    let h = &h;
    let statuses = futures::future::join_all(
        (0..4)
            .map(|i| async move { h.post_signed(source, &event(&format!("b{i}"))).await.status().as_u16() }),
    )
    .await;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 200, 429, 429], "{statuses:?}");
    assert_eq!(h.events(tenant).await, 2);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_request_dropped_while_counting_does_not_freeze_the_backlog(pool: PgPool) {
    let config = IngressConfig { backlog_refresh: Duration::from_millis(50), ..IngressConfig::default() };
    let h = Harness::start_with(pool, redis_at("redis://127.0.0.1:6379"), config).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    h.set_limits(tenant, LimitOverrides { backlog: Some(1), ..LimitOverrides::default() }).await;
    assert_eq!(h.post_signed(source, &event("c1")).await.status(), 200);
    assert_eq!(h.post_signed(source, &event("c2")).await.status(), 429);
    // Counting is stuck behind a lock; a client gives up on its request meanwhile.
    let mut lock = h.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE delivery_queue IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let body = event("c3");
    let signature = format!("sha256={}", hmac_hex(SECRET, body.as_bytes()));
    let gave_up = h
        .client
        .post(h.url(source))
        .header("content-type", "application/json")
        .header("x-wap-signature", signature)
        .timeout(Duration::from_secs(1))
        .body(body)
        .send()
        .await;
    assert!(gave_up.is_err() || gave_up.unwrap().status() == 429);
    // The backlog drains (its delivery is done), and ingest accepts again.
    sqlx::query("DELETE FROM delivery_queue").execute(&mut *lock).await.unwrap();
    lock.commit().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = h.post_signed(source, &event("c4")).await.status().as_u16();
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status} after the backlog drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A source's dedupe key: one message posted 50 times at once under 50 eventIds is one event;
/// an event without the key's value is deduplicated by its eventId; clearing the key applies to
/// the events received afterwards.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_dedupe_key_makes_one_event_of_one_message_under_many_event_ids(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Growth).await;
    sqlx::query("UPDATE sources SET dedupe_key = ARRAY['/deviceId', '/message/id'] WHERE id = $1")
        .bind(source.uuid())
        .execute(&h.pool)
        .await
        .unwrap();
    let bodies: Vec<String> = (0..50).map(|i| event(&format!("evt_resent_{i}"))).collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| h.post_signed(source, b))).await;
    let mut texts = Vec::new();
    for a in answers {
        assert_eq!(a.status(), 200);
        texts.push(a.text().await.unwrap());
    }
    let stored = texts.iter().filter(|t| *t == r#"{"received":true}"#).count();
    assert_eq!(stored, 1, "exactly one is stored, the others are duplicates: {texts:?}");
    assert_eq!(h.events(tenant).await, 1);
    // Another device's message with the same message id is another event.
    assert_eq!(
        h.post_signed(source, &event_of("evt_other_device", "message.received", Some("dev_2")))
            .await
            .status(),
        200
    );
    assert_eq!(h.events(tenant).await, 2);
    // No deviceId: the key does not apply, the eventId does.
    for _ in 0..2 {
        assert_eq!(
            h.post_signed(source, &event_of("evt_no_device", "message.received", None)).await.status(),
            200
        );
    }
    assert_eq!(h.events(tenant).await, 3);

    // Back to eventIds: the same message under a new eventId is now a new event.
    sqlx::query("UPDATE sources SET dedupe_key = NULL WHERE id = $1")
        .bind(source.uuid())
        .execute(&h.pool)
        .await
        .unwrap();
    let mut n = 0;
    let h = &h;
    eventually("the cleared key to apply", || {
        n += 1;
        let body = event(&format!("evt_after_{n}"));
        async move { h.post_signed(source, &body).await.text().await.unwrap() == r#"{"received":true}"# }
    })
    .await;
}
