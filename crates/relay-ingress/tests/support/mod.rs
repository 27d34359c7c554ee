//! A real ingress router on 127.0.0.1:0 over a fresh database (from `#[sqlx::test]`) and the
//! real Redis under a key prefix of its own, plus helpers that create tenants, sources and
//! destinations through relay-store and sign requests the way WAPing does.

#![allow(dead_code)]

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use relay_core::plan::Plan;
use relay_core::secret::{MasterKey, Secret, WebhookSecret};
use relay_core::verify::Verification;
use relay_core::{SourceId, TenantId};
use relay_ingress::{IngressConfig, IngressState};
use relay_store::destinations::{self, NewDestination};
use relay_store::sources::{self, NewSource};
use relay_store::{PgPool, Redis, tenants};
use sha2::Sha256;

pub const SECRET: &str = "wap-shared-secret-123";

pub struct Harness {
    pub pool: PgPool,
    pub base: String,
    pub client: reqwest::Client,
    pub master_key: MasterKey,
    pub redis: Redis,
}

pub fn redis_at(url: &str) -> Redis {
    Redis::new(url, &format!("test:{}:", uuid::Uuid::now_v7().simple())).unwrap()
}

impl Harness {
    /// The ingress with its defaults, except that it never sheds load: tests share a busy
    /// machine, and shedding has a test of its own (`overload.rs`).
    pub async fn start(pool: PgPool) -> Harness {
        Self::start_on(pool, redis_at("redis://127.0.0.1:6379")).await
    }

    /// As [`Harness::start`], on `redis`.
    pub async fn start_on(pool: PgPool, redis: Redis) -> Harness {
        let writer = relay_ingress::WriterConfig {
            max_wait: std::time::Duration::from_secs(30),
            ..Default::default()
        };
        let config = IngressConfig { writer, ..IngressConfig::default() };
        Self::start_with(pool, redis, config).await
    }

    pub async fn start_with(pool: PgPool, redis: Redis, config: IngressConfig) -> Harness {
        let master_key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let state = IngressState::new(pool.clone(), redis.clone(), master_key.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, relay_ingress::router(state)).await });
        Harness { pool, base, client: reqwest::Client::new(), master_key, redis }
    }

    pub async fn tenant(&self, plan: Plan) -> TenantId {
        tenants::insert_tenant(&self.pool, "acme", plan).await.unwrap().id
    }

    pub async fn source(
        &self,
        tenant: TenantId,
        verification: Verification,
        secret: Option<&str>,
    ) -> SourceId {
        self.source_with_token(tenant, verification, secret, None).await
    }

    pub async fn source_with_token(
        &self,
        tenant: TenantId,
        verification: Verification,
        secret: Option<&str>,
        verify_token: Option<&str>,
    ) -> SourceId {
        let new = NewSource {
            tenant_id: tenant,
            name: "wap".into(),
            verification,
            secret: secret.map(|s| self.master_key.seal(&Secret::new(s))),
            secret_hint: secret.map(|s| Secret::new(s).hint()),
            verify_token: verify_token.map(|t| self.master_key.seal(&Secret::new(t))),
            dedupe_key: None,
            silence_alert_seconds: None,
        };
        sources::insert_source(&self.pool, &new).await.unwrap().source_id()
    }

    /// A tenant on `plan` with one default hmac_sha256 source.
    pub async fn setup(&self, plan: Plan) -> (TenantId, SourceId) {
        let tenant = self.tenant(plan).await;
        let source = self.source(tenant, Verification::default(), Some(SECRET)).await;
        (tenant, source)
    }

    pub async fn destination(
        &self,
        tenant: TenantId,
        source_ids: Option<Vec<SourceId>>,
        event_types: &[&str],
        device_ids: Option<Vec<&str>>,
    ) -> uuid::Uuid {
        let new = NewDestination {
            tenant_id: tenant,
            url: "https://example.com/hook".into(),
            description: None,
            source_ids,
            event_types: event_types.iter().map(|s| s.to_string()).collect(),
            device_ids: device_ids.map(|d| d.into_iter().map(String::from).collect()),
            headers: BTreeMap::new(),
            enabled: true,
            timeout_ms: 10_000,
            rate_limit_per_second: None,
            max_in_flight: 16,
            initial_delay_ms: 5_000,
            max_delay_ms: 3_600_000,
            window_seconds: 86_400,
            signing_secret: self.master_key.seal(WebhookSecret::generate().as_secret()),
            paused: false,
            replay_on_recovery: false,
            format: "waping".into(),
            meta_context: None,
            ordering: Default::default(),
        };
        destinations::insert_destination(&self.pool, &new).await.unwrap().id
    }

    pub fn url(&self, source: SourceId) -> String {
        format!("{}/v1/ingest/{source}", self.base)
    }

    /// POSTs `body` signed with `SECRET` as `X-Wap-Signature: sha256=<hex>`.
    pub async fn post_signed(&self, source: SourceId, body: &str) -> reqwest::Response {
        self.signed(source, body.to_owned()).send().await.unwrap()
    }

    /// The signed POST of [`Harness::post_signed`], to send later (from a spawned task).
    pub fn signed(&self, source: SourceId, body: String) -> reqwest::RequestBuilder {
        let signature = format!("sha256={}", hmac_hex(SECRET, body.as_bytes()));
        self.client
            .post(self.url(source))
            .header("content-type", "application/json")
            .header("x-wap-signature", signature)
            .body(body)
    }

    pub async fn post_with(
        &self,
        source: SourceId,
        body: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(source))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    pub async fn count(&self, sql: &'static str, tenant: TenantId) -> i64 {
        sqlx::query_scalar(sql).bind(tenant.uuid()).fetch_one(&self.pool).await.unwrap()
    }

    /// Lays `overrides` over the tenant's plan limits.
    pub async fn set_limits(&self, tenant: TenantId, overrides: relay_core::plan::LimitOverrides) {
        let update = tenants::TenantUpdate { overrides: Some(overrides), ..tenants::TenantUpdate::default() };
        tenants::update_tenant(&self.pool, tenant, &update).await.unwrap();
    }

    pub async fn events(&self, tenant: TenantId) -> i64 {
        self.count("SELECT count(*) FROM events WHERE tenant_id = $1", tenant).await
    }

    pub async fn deliveries(&self, tenant: TenantId) -> i64 {
        self.count("SELECT count(*) FROM deliveries WHERE tenant_id = $1", tenant).await
    }

    /// (reason, status) of every rejection of the tenant, oldest first.
    pub async fn rejections(&self, tenant: TenantId) -> Vec<(String, i32)> {
        sqlx::query_as("SELECT reason, status FROM rejections WHERE tenant_id = $1 ORDER BY id")
            .bind(tenant.uuid())
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

/// Written from the contract, independently of relay-core: HMAC-SHA256 of the body, hex.
pub fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Polls `check` every 10 ms until it holds; panics after 5 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub fn event(id: &str) -> String {
    event_of(id, "message.received", Some("dev_1"))
}

pub fn event_of(id: &str, event_type: &str, device: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "eventId": id,
        "type": event_type,
        "timestamp": "2026-04-03T12:00:00Z",
        "message": {"id": "msg_in_456", "from": "+15559876543", "body": "Hi"}
    });
    if let Some(d) = device {
        v["deviceId"] = d.into();
    }
    v.to_string()
}

pub async fn problem(response: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned(), body)
}
