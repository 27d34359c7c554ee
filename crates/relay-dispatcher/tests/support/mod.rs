//! Test support: a recording receiver (an axum server whose status, delay and headers a test
//! sets), a fixture that creates tenants, destinations, events and deliveries through
//! relay-store against the real Postgres of `#[sqlx::test]`, a real Redis under a unique key
//! prefix, a running dispatcher, and `wait_for` (poll with a deadline; tests never sleep to
//! synchronise).

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use relay_core::plan::{LimitOverrides, Plan};
use relay_core::secret::{MasterKey, WebhookSecret};
use relay_core::{DestinationId, EventId, SourceId, TenantId};
use relay_dispatcher::DispatcherConfig;
use relay_store::deliveries::{NewDelivery, insert_deliveries, notify_due};
use relay_store::destinations::{NewDestination, insert_destination};
use relay_store::events::{NewEvent, insert_events};
use relay_store::tenants::{TenantUpdate, insert_tenant, update_tenant};
use relay_store::{PgPool, Redis};
use sha2::Sha256;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// How the receiver answers: `statuses` first (one per request), then `status`.
#[derive(Debug, Clone)]
pub struct Script {
    pub statuses: VecDeque<u16>,
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

struct ReceiverState {
    received: Mutex<Vec<Received>>,
    script: Mutex<Script>,
    /// Requests being answered now, and the most ever answered at once.
    active: AtomicUsize,
    peak: AtomicUsize,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState {
            received: Mutex::default(),
            script: Mutex::new(Script {
                statuses: VecDeque::new(),
                status: 200,
                delay: Duration::ZERO,
                headers: Vec::new(),
                body: r#"{"ok":true}"#.into(),
            }),
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let app = axum::Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.state.script.lock().unwrap());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// The most requests the receiver was ever answering at once.
    pub fn peak_concurrency(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let active = state.active.fetch_add(1, Ordering::SeqCst) + 1;
    state.peak.fetch_max(active, Ordering::SeqCst);
    state.received.lock().unwrap().push(Received { path: uri.path().to_owned(), headers, body, at });
    let (status, delay, extra, body) = {
        let mut s = state.script.lock().unwrap();
        let status = s.statuses.pop_front().unwrap_or(s.status);
        (status, s.delay, s.headers.clone(), s.body.clone())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    state.active.fetch_sub(1, Ordering::SeqCst);
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Polls `check` every 20 ms until it holds; panics after `within`.
pub async fn wait_for<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Standard Webhooks check, written from the spec (not with relay_core::sign): the key is
/// the base64-decoded part of the `whsec_` secret, the signed content `{id}.{timestamp}.{body}`,
/// the header a space-separated list of `v1,<base64 HMAC-SHA256>`.
pub fn standard_webhooks_verifies(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|candidate| candidate == expected)
}

pub fn test_redis() -> Redis {
    Redis::new("redis://127.0.0.1:6379", &format!("test:dispatcher:{}:", uuid::Uuid::new_v4().simple()))
        .unwrap()
}

pub fn dead_redis() -> Redis {
    Redis::new("redis://127.0.0.1:1", "test:dead:").unwrap()
}

/// A dispatcher configuration for loopback receivers and quick tests.
pub fn test_config() -> DispatcherConfig {
    DispatcherConfig {
        allow_private_destinations: true,
        concurrency: 64,
        batch_size: 200,
        lease_duration: Duration::from_secs(5),
        poll_interval: Duration::from_millis(100),
        unhealthy_after: Duration::from_secs(72 * 3600),
        shutdown_deadline: Duration::from_secs(2),
        housekeeping_interval: Duration::from_millis(200),
    }
}

pub struct Fixture {
    pub pool: PgPool,
    pub key: MasterKey,
}

/// Destination settings a test may change from the defaults.
pub struct DestinationSpec {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    pub timeout_ms: i32,
    pub rate_limit_per_second: Option<i32>,
    pub max_in_flight: i32,
    pub initial_delay_ms: i64,
    pub max_delay_ms: i64,
    pub window_seconds: i32,
    pub replay_on_recovery: bool,
    pub event_types: Vec<String>,
}

impl DestinationSpec {
    pub fn new(url: String) -> Self {
        Self {
            url,
            headers: BTreeMap::new(),
            enabled: true,
            timeout_ms: 5_000,
            rate_limit_per_second: None,
            max_in_flight: 16,
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
            window_seconds: 3_600,
            replay_on_recovery: false,
            event_types: vec!["*".into()],
        }
    }
}

pub struct Dest {
    pub id: DestinationId,
    pub tenant: TenantId,
    pub secret: WebhookSecret,
}

impl Fixture {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, key: MasterKey::from_base64(&MasterKey::generate_base64()).unwrap() }
    }

    pub async fn tenant(&self, rate: Option<u32>, burst: Option<u32>) -> TenantId {
        let tenant = insert_tenant(&self.pool, "acme", Plan::Growth).await.unwrap();
        if rate.is_some() || burst.is_some() {
            let overrides = LimitOverrides { deliveries_per_second: rate, burst, ..Default::default() };
            let update = TenantUpdate { overrides: Some(overrides), ..Default::default() };
            update_tenant(&self.pool, tenant.id, &update).await.unwrap();
        }
        tenant.id
    }

    pub async fn destination(&self, tenant: TenantId, spec: DestinationSpec) -> Dest {
        let secret = WebhookSecret::generate();
        let row = insert_destination(
            &self.pool,
            &NewDestination {
                tenant_id: tenant,
                url: spec.url,
                description: None,
                source_ids: None,
                event_types: spec.event_types,
                device_ids: None,
                headers: spec.headers,
                enabled: spec.enabled,
                timeout_ms: spec.timeout_ms,
                rate_limit_per_second: spec.rate_limit_per_second,
                max_in_flight: spec.max_in_flight,
                initial_delay_ms: spec.initial_delay_ms,
                max_delay_ms: spec.max_delay_ms,
                window_seconds: spec.window_seconds,
                signing_secret: self.key.seal(secret.as_secret()),
                paused: false,
                replay_on_recovery: spec.replay_on_recovery,
                format: "waping".into(),
                meta_context: None,
                ordering: Default::default(),
            },
        )
        .await
        .unwrap();
        Dest { id: DestinationId::from_uuid(row.id), tenant, secret }
    }

    /// Stores `bodies` as events of `tenant` with one delivery each to `dest`, then wakes the
    /// dispatchers, as ingest does. Returns the event ids.
    pub async fn enqueue(&self, dest: &Dest, bodies: &[Vec<u8>]) -> Vec<EventId> {
        let source = SourceId::new();
        let events: Vec<NewEvent> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| NewEvent {
                id: EventId::new(),
                tenant_id: dest.tenant,
                source_id: source,
                wap_event_id: format!("wap_{i}"),
                event_type: "message.received".into(),
                device_id: None,
                timestamp: time::OffsetDateTime::now_utc(),
                body: bytes::Bytes::from(body.clone()),
                dedupe_id: None,
                keep_days: 0,
            })
            .collect();
        let mut tx = self.pool.begin().await.unwrap();
        let ids = insert_events(&mut *tx, &events).await.unwrap();
        let deliveries: Vec<NewDelivery> =
            ids.iter().map(|&event_id| NewDelivery::due_now(dest.tenant, event_id, dest.id)).collect();
        for chunk in deliveries.chunks(1_000) {
            insert_deliveries(&mut *tx, chunk).await.unwrap();
        }
        notify_due(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        ids
    }

    /// (status, attempts) of every delivery of `dest`.
    pub async fn deliveries(&self, dest: &Dest) -> Vec<(String, i32)> {
        sqlx::query_as("SELECT status, attempts FROM deliveries WHERE destination_id = $1 ORDER BY id")
            .bind(dest.id.uuid())
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    pub async fn count_status(&self, dest: &Dest, status: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE destination_id = $1 AND status = $2")
            .bind(dest.id.uuid())
            .bind(status)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// (number, outcome, status_code, trigger) of the attempts of `dest`, oldest first.
    pub async fn attempts(&self, dest: &Dest) -> Vec<(i32, String, Option<i32>, String)> {
        sqlx::query_as(
            "SELECT number, outcome, status_code, trigger FROM attempts WHERE destination_id = $1 \
             ORDER BY started_at, number",
        )
        .bind(dest.id.uuid())
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// (enabled, disabled_reason) of `dest`.
    pub async fn destination_state(&self, dest: &Dest) -> (bool, Option<String>) {
        sqlx::query_as("SELECT enabled, disabled_reason FROM destinations WHERE id = $1")
            .bind(dest.id.uuid())
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// A dispatcher running in the background until [`Running::stop`].
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
}

pub fn start(fx: &Fixture, redis: Redis, config: DispatcherConfig) -> Running {
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(relay_dispatcher::run(fx.pool.clone(), redis, fx.key.clone(), config, async {
        let _ = rx.await;
    }));
    Running { stop: Some(tx), handle }
}

impl Running {
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.await.unwrap().unwrap();
    }
}

/// A UUIDv7 minted `days` ago: a row's id says when it was written, and retention goes by it.
pub fn uuid_days_ago(days: u64) -> uuid::Uuid {
    let at = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap();
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos()))
}
