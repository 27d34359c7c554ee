//! CONTRACT §10 through the wired server (ingress and admin roles of one process, as `serve`
//! builds them): a tenant's burst of heavy admin reads takes neither the connections nor the
//! answers of another tenant's ingest.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use relay_core::plan::Plan;
use relay_core::secret::{MasterKey, Secret};
use relay_core::verify::Verification;
use relay_server::app::{self, Deps};
use relay_server::settings::SettingsArgs;
use relay_store::db::{self, PoolConfig};
use relay_store::sources::{self, NewSource};
use relay_store::{PgPool, Redis, tenants};
use sha2::Sha256;

const SECRET: &str = "wap-shared-secret-123";
const JWT_SECRET: &[u8] = b"isolation-test-jwt-secret-0123456789abcdef";

/// The wired router of an ingress+admin process whose main pool has `pool_size` connections,
/// served on 127.0.0.1:0; answers its base URL.
async fn serve(pool: &PgPool, pool_size: u32) -> (String, Deps) {
    let args = SettingsArgs {
        roles: Some("ingress,admin".into()),
        db_pool_size: Some(pool_size),
        // The admin read pool of a default process (half of 16): room for two tenants' bounds.
        admin_db_pool_size: Some(8),
        config: Some("/dev/null".into()),
        ..SettingsArgs::default()
    };
    let settings = args.resolve().unwrap();
    let main = db::connect_lazy(
        pool.connect_options().as_ref().clone(),
        &PoolConfig { max_connections: pool_size, ..PoolConfig::default() },
    );
    let redis_prefix = format!("test:isolation:{}:", uuid::Uuid::new_v4().simple());
    let redis = Redis::new("redis://127.0.0.1:6379", &redis_prefix).unwrap();
    let deps = Deps {
        admin_reads: app::admin_reads_pool(&main, &settings),
        streams: relay_admin::stream::StreamHub::new(main.clone(), redis.clone()),
        pool: main,
        redis,
        master_key: MasterKey::from_base64(&MasterKey::generate_base64()).unwrap(),
        jwt: relay_admin::JwtKeys::new(JWT_SECRET).unwrap(),
    };
    let router = app::router(&deps, &settings, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, deps)
}

fn signature(body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Tenant A has 50,000 attempts in its statistics window, so each `GET /v1/stats` is real work.
async fn busy_tenant(deps: &Deps) -> String {
    let a = tenants::insert_tenant(&deps.pool, "a", Plan::Pro).await.unwrap().id;
    let ids: Vec<uuid::Uuid> = (0..50_000).map(|_| uuid::Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
         duration_ms, url, outcome, status_code, response_headers, response_body) \
         SELECT id, $2, gen_random_uuid(), gen_random_uuid(), 1, 'auto', now() - random() * interval '1 hour', \
                (random() * 1000)::int, 'https://8.8.8.8/', 'success', 200, '{}', 'ok' FROM UNNEST($1::uuid[]) AS id",
    )
    .bind(ids)
    .bind(a.uuid())
    .execute(&deps.pool)
    .await
    .unwrap();
    let role = relay_admin::Role::Tenant;
    relay_admin::issue_token(&deps.jwt, role, Some(a), Duration::from_secs(600)).0
}

/// 48 concurrent `GET /v1/stats` of tenant A, again and again, while tenant B posts 60 events
/// (4 at a time): every B event is accepted (200) and stored, none answered 503; A's reads past
/// its bound (2 running, 32 waiting) answer 429 `too_many_reads` with `Retry-After`, the others 200 (or, on a starved
/// machine, 503 with `Retry-After`; never 500).
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn heavy_admin_reads_of_one_tenant_leave_anothers_ingest_alone(pool: PgPool) {
    let (base, deps) = serve(&pool, 4).await;
    let token = busy_tenant(&deps).await;
    let b = tenants::insert_tenant(&deps.pool, "b", Plan::Pro).await.unwrap().id;
    let new = NewSource {
        tenant_id: b,
        name: "wap".into(),
        verification: Verification::default(),
        secret: Some(deps.master_key.seal(&Secret::new(SECRET))),
        secret_hint: Some(Secret::new(SECRET).hint()),
        verify_token: None,
        dedupe_key: None,
        silence_alert_seconds: None,
    };
    let source = sources::insert_source(&deps.pool, &new).await.unwrap().source_id();
    let client = reqwest::Client::new();
    let done = stop_flag();

    let reader = {
        let (client, base, done) = (client.clone(), base.clone(), done.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let burst =
                    (0..48).map(|_| client.get(format!("{base}/v1/stats")).bearer_auth(&token).send());
                for res in futures::future::join_all(burst).await {
                    let res = res.unwrap();
                    let retry_after = res.headers().contains_key("retry-after");
                    let status = res.status().as_u16();
                    let body: serde_json::Value = res.json().await.unwrap();
                    statuses.push((status, body["code"].as_str().unwrap_or("").to_owned(), retry_after));
                }
            }
            statuses
        })
    };
    let mut answers = Vec::new();
    for round in 0..15 {
        let posts = (0..4).map(|i| {
            let body = serde_json::json!({"eventId": format!("evt_{round}_{i}"), "type": "message.received",
                "timestamp": "2026-04-03T12:00:00Z", "deviceId": "dev_1", "message": {"body": "Hi"}})
            .to_string();
            client
                .post(format!("{base}/v1/ingest/{source}"))
                .header("content-type", "application/json")
                .header("x-wap-signature", signature(&body))
                .body(body)
                .send()
        });
        for res in futures::future::join_all(posts).await {
            answers.push(res.unwrap().status().as_u16());
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.await.unwrap();

    assert!(answers.iter().all(|&s| s == 200), "tenant B's ingest answers: {answers:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(b.uuid())
        .fetch_one(&deps.pool)
        .await
        .unwrap();
    assert_eq!(stored, 60, "every event of B is stored");
    let ok = reads.iter().filter(|r| r.0 == 200).count();
    let refused = reads.iter().filter(|r| r.0 == 429).count();
    assert!(ok > 0 && refused > 0, "A's reads answered 200 x{ok}, 429 x{refused}");
    // Past the bound: 429 too_many_reads. Within it, on a machine busy enough to hold a read
    // past the statement timeout or a connection past the pool's wait: 503 (`query_timeout`,
    // `unavailable`). All say when to retry; no read is answered 500.
    let others: Vec<_> = reads
        .iter()
        .filter(|r| {
            r.0 != 200 && !matches!((r.0, r.1.as_str(), r.2), (429, "too_many_reads", true) | (503, _, true))
        })
        .collect();
    assert!(others.is_empty(), "A's reads answer 200 or a documented refusal: {others:?}");
    let over_bound = reads.iter().filter(|r| r.0 == 429).all(|r| r.1 == "too_many_reads" && r.2);
    assert!(over_bound, "every read past the bound answers 429 too_many_reads with Retry-After");
}

fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}
