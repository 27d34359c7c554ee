//! What unauthenticated or outsized traffic may cost: a flood of refused requests is recorded in
//! part and counted, and never starves valid ingest.

mod support;

use std::time::{Duration, Instant};

use relay_core::plan::Plan;
use relay_store::PgPool;
use support::*;

/// (rows stored, refusals counted onto them) for `tenant`.
async fn recorded(h: &Harness, tenant: relay_core::TenantId) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), COALESCE(sum(repeats), 0)::bigint FROM rejections WHERE tenant_id = $1")
        .bind(tenant.uuid())
        .fetch_one(&h.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_flood_of_refusals_is_recorded_in_part_and_counted(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let sent = 60;
    let floods = (0..sent).map(|i| {
        let h = &h;
        async move {
            let response =
                h.post_with(source, &event(&format!("e{i}")), &[("x-wap-signature", "sha256=00")]).await;
            assert_eq!(response.status(), 401);
        }
    });
    futures::future::join_all(floods).await;
    // Valid ingest is not held up by the rejection writes.
    assert_eq!(h.post_signed(source, &event("good")).await.status(), 200);
    // Every refusal is accounted for, most of them only counted: at most 20 stored per minute
    // (a minute boundary during the flood allows 20 more).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (rows, repeats) = recorded(&h, tenant).await;
        assert!(rows <= 40, "{rows} refusals stored in full");
        if rows + repeats == sent {
            break;
        }
        assert!(Instant::now() < deadline, "{rows} stored + {repeats} counted of {sent}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another reason has its own allowance.
    let response = h.post_signed(source, "{not json").await;
    assert_eq!(response.status(), 400);
    let reasons: Vec<(String, i32)> = h.rejections(tenant).await;
    assert!(reasons.iter().any(|(reason, _)| reason == "invalid_json"), "{reasons:?}");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn ingest_past_the_plan_rate_is_429_with_retry_after(pool: PgPool) {
    the_ingest_rate_holds(Harness::start(pool).await).await;
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn the_ingest_rate_holds_per_process_while_redis_is_down(pool: PgPool) {
    the_ingest_rate_holds(Harness::start_on(pool, redis_at("redis://127.0.0.1:1")).await).await;
}

async fn the_ingest_rate_holds(h: Harness) {
    let (tenant, source) = h.setup(Plan::Starter).await;
    let overrides = relay_core::plan::LimitOverrides {
        ingest_per_second: Some(1),
        ingest_burst: Some(3),
        ..Default::default()
    };
    h.set_limits(tenant, overrides).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = h.post_signed(source, &event(&format!("r{i}"))).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after: u64 =
                response.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds");
            assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
            let (_, code, _) = problem(response).await;
            assert_eq!(code, "rate_limited");
        }
    }
    // The burst passes; past it the plan's rate holds (one more may conform if a second passed).
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(h.events(tenant).await, statuses.iter().filter(|s| **s == 200).count() as i64);
    // Another tenant is not held back by this one.
    let (other, other_source) = h.setup(Plan::Starter).await;
    assert_eq!(h.post_signed(other_source, &event("o1")).await.status(), 200);
    assert_eq!(h.events(other).await, 1);
}

/// A message with a 200 KB value where the source's dedupe key points (CONTRACT §10): refused at
/// once with a 400 that says why (it used to fail to store with a 500 forever, and to poison every
/// batch it joined); another tenant's events in the same moment are stored; and Redis keeps a
/// fixed-size key per stored event, whatever the event's identity.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn an_outsized_dedupe_value_is_refused_clearly_and_costs_redis_nothing(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Growth).await;
    let (other_tenant, other) = h.setup(Plan::Growth).await;
    sqlx::query("UPDATE sources SET dedupe_key = ARRAY['/message/body'] WHERE id = $1")
        .bind(source.uuid())
        .execute(&h.pool)
        .await
        .unwrap();
    let body_of = |id: &str, text: &str| {
        serde_json::json!({"eventId": id, "type": "message.received", "timestamp": "2026-04-03T12:00:00Z",
            "deviceId": "dev_1", "message": {"id": id, "body": text}})
        .to_string()
    };
    let huge = "x".repeat(200_000);
    let posts = (0..8).map(|i| {
        let (h, body) = (&h, body_of(&format!("big_{i}"), &huge));
        async move { h.post_signed(source, &body).await }
    });
    let others = (0..8).map(|i| {
        let h = &h;
        async move { h.post_signed(other, &event(&format!("small_{i}"))).await.status() }
    });
    let (big, small) = tokio::join!(futures::future::join_all(posts), futures::future::join_all(others));
    assert!(small.iter().all(|s| *s == 200), "the other tenant is stored: {small:?}");
    for response in big {
        let (status, code, problem) = problem(response).await;
        assert_eq!((status, code.as_str()), (400, "invalid_event"), "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("/message/body") && detail.contains("1024"), "{detail}");
    }
    assert_eq!(h.events(other_tenant).await, 8);
    assert_eq!(h.events(tenant).await, 0);

    // A value that fits is the event's identity, and Redis's key for it is a fixed-size digest.
    let long_id = "y".repeat(900);
    for id in ["fits_1", "fits_2"] {
        let answer = h.post_signed(source, &body_of(id, &long_id)).await.text().await.unwrap();
        let expected =
            if id == "fits_1" { r#"{"received":true}"# } else { r#"{"received":true,"duplicate":true}"# };
        assert_eq!(answer, expected);
    }
    // Redis holds one fixed-size key per stored event (the other tenant's 8 and fits_1), written
    // after each answer, and none for the refused ones. (Looked up by name: KEYS would scan
    // every test's keys.)
    use deadpool_redis::redis::cmd;
    use relay_core::dedupe::{digest, identity};
    let name = |source, id: &str| h.redis.key(&format!("d:{}", digest(source, id)));
    let fits = serde_json::from_str(&body_of("fits_1", &long_id)).unwrap();
    let fits_identity = identity(&fits, &["/message/body".to_owned()]).unwrap().unwrap();
    let stored: Vec<String> =
        (0..8).map(|i| name(other, &format!("small_{i}"))).chain([name(source, &fits_identity)]).collect();
    eventually("the fast path to remember every stored event", || async {
        let mut all = true;
        for key in &stored {
            all &= exists(&h.redis, key).await;
        }
        all
    })
    .await;
    for i in 0..8 {
        assert!(
            !exists(&h.redis, &name(source, &format!("big_{i}"))).await,
            "a refused event is not remembered"
        );
    }
    let prefix = h.redis.key("d:");
    for key in &stored {
        assert_eq!(key.len(), prefix.len() + 32, "a fixed-size key: {key}");
        let bytes: i64 = h.redis.query(cmd("MEMORY").arg("USAGE").arg(key)).await.unwrap();
        assert!(bytes <= 200, "{key} costs Redis {bytes} bytes");
    }
}

/// Whether Redis holds `key` (false while Redis does not answer).
async fn exists(redis: &relay_store::Redis, key: &str) -> bool {
    let exists: Option<i64> = redis.query(deadpool_redis::redis::cmd("EXISTS").arg(key)).await;
    exists == Some(1)
}
