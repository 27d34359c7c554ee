//! Latency of `GET /v1/attempts?limit=50` on a tenant with 1,000,000 attempts (ignored by
//! default; run with `cargo test -p relay-admin --test api perf -- --ignored --nocapture`).
//! The page is a keyset scan of `attempts_tenant (tenant_id, id DESC)`, so its cost does not grow
//! with the tenant's history or with the depth of the cursor.

use std::time::Instant;

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

const ATTEMPTS: usize = 1_000_000;
const BATCH: usize = 100_000;
const SAMPLES: usize = 300;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
#[ignore = "loads a million rows; run explicitly"]
async fn attempts_page_p99_on_a_million_attempts(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("enterprise").await;
    let noise = app.tenant("enterprise").await;
    let dst = app.destination(&t, json!({})).await;
    for tenant in [&t, &noise] {
        for _ in 0..ATTEMPTS / BATCH {
            let ids: Vec<Uuid> = (0..BATCH).map(|_| Uuid::now_v7()).collect();
            sqlx::query(
                "INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
                 duration_ms, url, outcome, status_code, response_body) \
                 SELECT i, $2, gen_random_uuid(), $3, 1, 'auto', now(), (random() * 500)::int, \
                        'https://8.8.8.8/hooks/wap', CASE WHEN random() < 0.9 THEN 'success' ELSE 'http_error' END, \
                        200, 'ok' FROM UNNEST($1::uuid[]) AS i",
            )
            .bind(ids)
            .bind(tenant.id.uuid())
            .bind(dst.uuid())
            .execute(&app.pool)
            .await
            .unwrap();
        }
    }
    sqlx::query("ANALYZE attempts").execute(&app.pool).await.unwrap();
    let deep: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM attempts WHERE tenant_id = $1 ORDER BY id DESC OFFSET 900000 LIMIT 1",
    )
    .bind(t.id.uuid())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let deep_cursor = relay_core::AttemptId::from_uuid(deep[0]).to_string();
    for (what, path) in [
        ("first page", "/v1/attempts?limit=50".to_owned()),
        ("page at depth 900,000", format!("/v1/attempts?limit=50&cursor={deep_cursor}")),
        ("outcome=http_error", "/v1/attempts?limit=50&outcome=http_error".to_owned()),
    ] {
        for _ in 0..20 {
            app.get(&path, &t.token).await; // warm up caches and prepared statements
        }
        let mut ms = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let start = Instant::now();
            let res = app.get(&path, &t.token).await;
            ms.push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(res.status, StatusCode::OK);
            assert_eq!(res.body["data"].as_array().unwrap().len(), 50);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "GET {path} ({what}) on {ATTEMPTS} attempts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms[ms.len() - 1]
        );
    }
}
