//! The harness: the real admin router over a fresh database (from `#[sqlx::test]`), driven with
//! `tower::ServiceExt::oneshot`, plus fixtures that write events, deliveries, attempts and
//! rejections through relay-store the way ingress and the dispatcher do.

#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relay_admin::{AdminState, JwtKeys, ReadBudget, Role, issue_token};
use relay_core::secret::MasterKey;
use relay_core::{DeliveryId, DestinationId, EventId, SourceId, TenantId};
use relay_store::PgPool;
use relay_store::deliveries::NewDelivery;
use relay_store::events::NewEvent;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

pub const JWT_SECRET: &[u8] = b"admin-test-jwt-secret-0123456789abcdef";
/// A public address: destinations on it pass the address policy (nothing connects to it here).
pub const PUBLIC_URL: &str = "https://8.8.8.8/hooks/wap";

pub struct TestApp {
    pub pool: PgPool,
    pub state: AdminState,
    router: Router,
    pub operator: String,
}

/// A response: status, headers and the body as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The problem `code` of an error response.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("an id in the body").to_owned()
    }
}

/// The ids made by [`TestApp::one_delivery`].
pub struct OneDelivery {
    pub t: Tenant,
    pub dst: DestinationId,
    pub dlv: DeliveryId,
}

/// A tenant made through the API, with a token.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub token: String,
}

impl TestApp {
    pub fn new(pool: PgPool) -> Self {
        Self::with_policy(pool, false)
    }

    pub fn with_policy(pool: PgPool, allow_private: bool) -> Self {
        let reads = ReadBudget::new(pool.clone(), relay_admin::DEFAULT_READS_PER_TENANT);
        Self::build(pool, allow_private, reads)
    }

    /// The admin API with heavy reads on `reads`.
    pub fn with_reads(pool: PgPool, reads: ReadBudget) -> Self {
        Self::build(pool, false, reads)
    }

    fn build(pool: PgPool, allow_private: bool, reads: ReadBudget) -> Self {
        let jwt = JwtKeys::new(JWT_SECRET).unwrap();
        let redis = relay_store::Redis::new(
            "redis://127.0.0.1:6379",
            &format!("test:admin:{}:", uuid::Uuid::new_v4().simple()),
        )
        .unwrap();
        let state = AdminState {
            pool: pool.clone(),
            reads,
            master_key: MasterKey::from_base64(&MasterKey::generate_base64()).unwrap(),
            jwt: jwt.clone(),
            public_url: "https://relay.example.com/".into(),
            allow_private_destinations: allow_private,
            require_https_destinations: false,
            streams: relay_admin::stream::StreamHub::new(pool.clone(), redis.clone()),
            manual_limit: relay_admin::manual::limiter(redis),
        };
        let (operator, _) = issue_token(&jwt, Role::Operator, None, Duration::from_secs(600));
        Self { pool, router: relay_admin::router(state.clone()), state, operator }
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = match body {
            Some(body) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    /// Sends a request as built by the caller.
    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("POST", path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(token), Some(body)).await
    }

    /// Creates a tenant through the operator API and mints a token for it.
    pub async fn tenant(&self, plan: &str) -> Tenant {
        let res = self
            .post("/v1/tenants", &self.operator, json!({"name": format!("{plan} co"), "plan": plan}))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
        let id: TenantId = res.id().parse().unwrap();
        let (token, _) = issue_token(&self.state.jwt, Role::Tenant, Some(id), Duration::from_secs(600));
        Tenant { id, token }
    }

    pub async fn source(&self, t: &Tenant) -> SourceId {
        let res =
            self.post("/v1/sources", &t.token, json!({"name": "wa", "secret": "wap-secret-123456"})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
        res.id().parse().unwrap()
    }

    pub async fn destination(&self, t: &Tenant, extra: Value) -> DestinationId {
        let mut body = json!({"url": PUBLIC_URL});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let res = self.post("/v1/destinations", &t.token, body).await;
        assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
        res.id().parse().unwrap()
    }

    /// Stores events the way ingress does; returns their ids, oldest first.
    pub async fn events(&self, t: &Tenant, source: SourceId, n: usize, event_type: &str) -> Vec<EventId> {
        let events: Vec<NewEvent> = (0..n)
            .map(|_| {
                let wap_id = uuid::Uuid::now_v7().to_string();
                let body = json!({"eventId": wap_id, "type": event_type, "timestamp": "2026-04-03T12:00:00Z",
                                  "deviceId": "dev_1", "message": {"body": "Hi"}});
                NewEvent {
                    id: EventId::new(),
                    tenant_id: t.id,
                    source_id: source,
                    wap_event_id: wap_id,
                    event_type: event_type.to_owned(),
                    device_id: Some("dev_1".to_owned()),
                    timestamp: OffsetDateTime::now_utc(),
                    body: body.to_string().into(),
                    dedupe_id: None,
                    keep_days: 0,
                }
            })
            .collect();
        relay_store::events::insert_events(&self.pool, &events).await.unwrap()
    }

    /// One pending delivery of `event` to `destination`, as ingest fan-out creates it.
    pub async fn delivery(&self, t: &Tenant, event: EventId, destination: DestinationId) -> DeliveryId {
        let id = DeliveryId::new();
        let d = NewDelivery { id, ..NewDelivery::due_now(t.id, event, destination) };
        relay_store::deliveries::insert_deliveries(&self.pool, &[d]).await.unwrap();
        id
    }

    /// A pro tenant with a source, a destination, one event and its pending delivery.
    pub async fn one_delivery(&self) -> OneDelivery {
        let t = self.tenant("pro").await;
        let src = self.source(&t).await;
        let dst = self.destination(&t, json!({})).await;
        let evt = self.events(&t, src, 1, "message.received").await[0];
        let dlv = self.delivery(&t, evt, dst).await;
        OneDelivery { t, dst, dlv }
    }

    /// Finishes a delivery with `status`, as the dispatcher does after its last attempt.
    pub async fn finish(&self, delivery: DeliveryId, status: &str) {
        sqlx::query(
            "WITH q AS (DELETE FROM delivery_queue WHERE delivery_id = $1) \
             UPDATE deliveries SET status = $2, next_attempt_at = NULL, completed_at = now(), attempts = 1 \
             WHERE id = $1",
        )
        .bind(delivery.uuid())
        .bind(status)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Records an attempt of a delivery, as the dispatcher does.
    pub async fn attempt(
        &self,
        t: &Tenant,
        delivery: DeliveryId,
        dest: DestinationId,
        outcome: &str,
        ms: i32,
    ) {
        sqlx::query(
            "INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
             duration_ms, url, outcome, status_code, response_headers, response_body) \
             VALUES ($1, $2, $3, $4, 1, 'auto', now(), $5, $6, $7, $8, '{\"content-type\":\"text/plain\"}', 'ok')",
        )
        .bind(relay_core::AttemptId::new().uuid())
        .bind(t.id.uuid())
        .bind(delivery.uuid())
        .bind(dest.uuid())
        .bind(ms)
        .bind(PUBLIC_URL)
        .bind(outcome)
        .bind(if outcome == "success" { 200 } else { 500 })
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// `n` attempts of `dest` started in the last hour, written in one statement: a tenant
    /// whose statistics take real work.
    pub async fn many_attempts(&self, t: &Tenant, dest: DestinationId, n: usize) {
        let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
        sqlx::query(
            "INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
             duration_ms, url, outcome, status_code, response_headers, response_body) \
             SELECT id, $2, gen_random_uuid(), $3, 1, 'auto', now() - random() * interval '1 hour', \
                    (random() * 1000)::int, $4, 'success', 200, '{}', 'ok' FROM UNNEST($1::uuid[]) AS id",
        )
        .bind(ids)
        .bind(t.id.uuid())
        .bind(dest.uuid())
        .bind(PUBLIC_URL)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// A delivery row as stored: (status, next_trigger, next_attempt_due_now, completed_at is null).
    pub async fn delivery_state(&self, id: DeliveryId) -> (String, String, bool, bool) {
        sqlx::query_as(
            "SELECT status, next_trigger, coalesce(next_attempt_at <= now(), false), completed_at IS NULL \
             FROM deliveries WHERE id = $1",
        )
        .bind(id.uuid())
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}
