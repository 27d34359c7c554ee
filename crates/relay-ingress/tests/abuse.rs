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
