//! The end-to-end harness: a fresh database per test, the service started in-process or as the
//! real binary, a recording receiver, and helpers that drive the public admin and ingest APIs.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use relay_server::settings::{Roles, SettingsArgs};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::OnceCell;

pub const JWT_SECRET: &str = "e2e-jwt-secret-that-is-long-enough-0123456789";
pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const WAP_SECRET: &str = "wap-secret-for-e2e";

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Polls `check` every 20 ms until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops databases left by earlier runs of this suite (once per test process).
async fn sweep_old_databases() {
    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let pool = sqlx::PgPool::connect(ADMIN_URL).await.expect("postgres is up");
            let names: Vec<String> =
                sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'wap_relay_e2e_%'")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for name in names {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
            }
        })
        .await;
}

/// A unique database URL (the service creates the database) and a unique Redis prefix.
pub async fn fresh_names() -> (String, String) {
    sweep_old_databases().await;
    let id = uuid::Uuid::now_v7().simple().to_string();
    (format!("postgres://postgres@127.0.0.1:5432/wap_relay_e2e_{id}"), format!("e2e:{id}:"))
}

pub fn settings_args(database_url: &str, redis_prefix: &str) -> SettingsArgs {
    SettingsArgs {
        database_url: Some(database_url.to_owned()),
        redis_url: Some("redis://127.0.0.1:6379".into()),
        redis_prefix: Some(redis_prefix.to_owned()),
        jwt_secret: Some(relay_core::secret::Secret::new(JWT_SECRET)),
        master_key: Some(relay_core::secret::Secret::new(MASTER_KEY)),
        allow_private_destinations: Some(true),
        db_pool_size: Some(8),
        ..SettingsArgs::default()
    }
}

/// The service running in this process.
pub struct App {
    pub base: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub operator: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl App {
    pub async fn start() -> App {
        let (db, prefix) = fresh_names().await;
        Self::start_with(settings_args(&db, &prefix), None).await
    }

    pub async fn start_with(args: SettingsArgs, roles: Option<Roles>) -> App {
        let mut settings = args.resolve().expect("settings");
        if let Some(roles) = roles {
            settings.roles = roles;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        settings.public_url = base.clone();
        let database_url = settings.database_url.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(relay_server::app::serve(settings, listener, async move {
            let _ = stopped.await;
        }));
        let app = App {
            base,
            database_url,
            client: reqwest::Client::new(),
            operator: token(json!({"role": "operator", "sub": "e2e-operator"})),
            stop: Some(stop),
            task: Some(task),
        };
        app.wait_ready().await;
        app
    }

    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.base);
        let client = self.client.clone();
        eventually(Duration::from_secs(30), "the service to be ready", || {
            let (url, client) = (url.clone(), client.clone());
            async move { client.get(url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
    }

    /// Stops gracefully and waits for the process's tasks to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url).await.unwrap()
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        api(&self.client, &self.base, method, path, token, body).await
    }

    /// A tenant with its token, a source (default hmac_sha256 with `WAP_SECRET`) and its id.
    pub async fn tenant_with_source(&self, plan: &str) -> Tenant {
        tenant_with_source(&self.client, &self.base, &self.operator, plan).await
    }
}

pub struct Tenant {
    pub id: String,
    pub token: String,
    pub source_id: String,
    pub ingest_url: String,
}

pub async fn api(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn tenant_with_source(client: &reqwest::Client, base: &str, operator: &str, plan: &str) -> Tenant {
    use reqwest::Method;
    let (status, tenant) =
        api(client, base, Method::POST, "/v1/tenants", operator, Some(json!({"name": "acme", "plan": plan})))
            .await;
    assert_eq!(status, 201, "{tenant}");
    let id = tenant["id"].as_str().unwrap().to_owned();
    let (status, minted) =
        api(client, base, Method::POST, &format!("/v1/tenants/{id}/tokens"), operator, Some(json!({}))).await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let (status, source) = api(
        client,
        base,
        Method::POST,
        "/v1/sources",
        &token,
        Some(json!({"name": "wap", "secret": WAP_SECRET})),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    Tenant {
        id,
        token,
        source_id: source["id"].as_str().unwrap().to_owned(),
        ingest_url: source["ingest_url"].as_str().unwrap().to_owned(),
    }
}

/// Creates a destination and returns (id, signing secret).
pub async fn destination(client: &reqwest::Client, base: &str, token: &str, body: Value) -> (String, String) {
    let (status, d) = api(client, base, reqwest::Method::POST, "/v1/destinations", token, Some(body)).await;
    assert_eq!(status, 201, "{d}");
    (d["id"].as_str().unwrap().to_owned(), d["signing_secret"].as_str().unwrap().to_owned())
}

/// A token minted with jsonwebtoken directly, from the documented claims.
pub fn token(extra: Value) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({"iss": "wap-relay", "aud": "wap-relay-admin", "iat": now, "exp": now + 3600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn wap_event(id: &str) -> String {
    json!({"eventId": id, "type": "message.received", "timestamp": "2026-04-03T12:00:00Z",
           "deviceId": "dev_123", "message": {"id": "msg_in_456", "from": "+15559876543", "body": "Hi"}})
    .to_string()
}

/// Standard Webhooks verification written from the spec, independent of relay-core.
pub fn standard_webhooks_valid(secret: &str, id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let key =
        base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected =
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|sig| sig == expected)
}

pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs a WAPing event signed with `WAP_SECRET`; returns the status.
/// Posts one signed event and returns the final status. A `503 overloaded` (the relay shedding
/// load) is retried shortly, as WAPing retries it; any other answer is returned as is (0 when
/// there was none).
pub async fn ingest(client: &reqwest::Client, ingest_url: &str, body: &str) -> u16 {
    for _ in 0..100 {
        let Some(response) = post_event(client, ingest_url, body).await else { return 0 };
        let status = response.status().as_u16();
        let shed = status == 503 && response.text().await.unwrap_or_default().contains("\"overloaded\"");
        if !shed {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    503
}

/// One signed POST of `body`: its status, 0 when there was no answer.
pub async fn ingest_once(client: &reqwest::Client, ingest_url: &str, body: &str) -> u16 {
    post_event(client, ingest_url, body).await.map_or(0, |r| r.status().as_u16())
}

/// One signed POST of `body`, the response itself (`None` when there was none).
pub async fn post_event(client: &reqwest::Client, ingest_url: &str, body: &str) -> Option<reqwest::Response> {
    client
        .post(ingest_url)
        .header("content-type", "application/json")
        .header("x-wap-signature", format!("sha256={}", sign_hex(WAP_SECRET, body.as_bytes())))
        .body(body.to_owned())
        .send()
        .await
        .ok()
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// When the receiver was done with it (answered, or the sender went away); `None` while open.
    pub finished: Option<Instant>,
    /// The status it was answered with.
    pub status: u16,
}

/// How a receiver answers one request: status and extra headers, given the request's 0-based
/// index among all received, its headers and its body.
pub type Answer = Arc<dyn Fn(usize, &HeaderMap, &Bytes) -> (u16, Vec<(String, String)>) + Send + Sync>;

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    status: u16,
    delay: Duration,
    extra_headers: Vec<(String, String)>,
    answer: Option<Answer>,
}

/// Marks a request finished however its handler ends (a sender that dies drops it).
struct Finish(Arc<Mutex<ReceiverState>>, usize);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.lock().unwrap().received[self.1].finished = Some(Instant::now());
    }
}

/// A recording destination on 127.0.0.1 whose answer and delay a test sets.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let (status, delay, extra, _finish) = {
        let mut s = state.lock().unwrap();
        let index = s.received.len();
        let (status, mut extra) = match &s.answer {
            Some(answer) => answer(index, &headers, &body),
            None => (s.status, Vec::new()),
        };
        extra.extend(s.extra_headers.iter().cloned());
        let at = Instant::now();
        s.received.push(Received { headers, body, at, finished: None, status });
        (status, s.delay, extra, Finish(state.clone(), index))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = (StatusCode::from_u16(status).unwrap(), "ok").into_response();
    for (k, v) in extra {
        response
            .headers_mut()
            .insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    response
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState { status: 200, ..ReceiverState::default() }));
        let app = axum::Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url: format!("http://{addr}/hook"), addr, state }
    }

    /// Answers each request as `answer` says (instead of the fixed status).
    pub fn answer_with(&self, answer: Answer) {
        self.state.lock().unwrap().answer = Some(answer);
    }

    pub fn respond(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }

    pub fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn respond_header(&self, name: &str, value: &str) {
        self.state.lock().unwrap().extra_headers.push((name.into(), value.into()));
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Received> {
        let what = format!("{n} requests at {}", self.url);
        eventually(deadline, &what, || async { (self.count() >= n).then(|| self.received()) }).await
    }
}

/// The real `wap-relay` binary, as a child process.
pub struct Binary {
    pub child: tokio::process::Child,
    pub base: String,
}

impl Binary {
    pub async fn start(database_url: &str, redis_prefix: &str, extra_env: &[(&str, &str)]) -> Binary {
        Self::start_logging_to(database_url, redis_prefix, extra_env, Stdio::inherit()).await
    }

    /// As [`Binary::start`], with the process's log (stderr) sent to `stderr`.
    pub async fn start_logging_to(
        database_url: &str,
        redis_prefix: &str,
        extra_env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Binary {
        Self::start_on(free_port(), database_url, redis_prefix, extra_env, stderr).await
    }

    /// As [`Binary::start_logging_to`], listening on `port` (to restart a relay where it was).
    pub async fn start_on(
        port: u16,
        database_url: &str,
        redis_prefix: &str,
        extra_env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Binary {
        let base = format!("http://127.0.0.1:{port}");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", "redis://127.0.0.1:6379")
            .env("RELAY_REDIS_PREFIX", redis_prefix)
            .env("RELAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("RELAY_PUBLIC_URL", &base)
            .env("RELAY_JWT_SECRET", JWT_SECRET)
            .env("RELAY_MASTER_KEY", MASTER_KEY)
            .env("RELAY_ALLOW_PRIVATE_DESTINATIONS", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().expect("the wap-relay binary starts");
        let binary = Binary { child, base };
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", binary.base);
        eventually(Duration::from_secs(60), "the binary to be ready", || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
        binary
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running") as i32;
        std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .unwrap()
    }
}

/// Two processes of the real binary (each with `env`) on one fresh database and Redis prefix,
/// and an enterprise tenant with its source, created through the first.
pub async fn two_processes(env: &[(&str, &str)]) -> (Binary, Binary, reqwest::Client, Tenant) {
    let (db, prefix) = fresh_names().await;
    let a = Binary::start(&db, &prefix, env).await;
    let b = Binary::start(&db, &prefix, env).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"role": "operator", "sub": "e2e"}));
    let t = tenant_with_source(&client, &a.base, &operator, "enterprise").await;
    (a, b, client, t)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs the binary with arguments (a CLI command) and returns stdout, asserting success.
pub fn run_cli(database_url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RELAY_JWT_SECRET", JWT_SECRET)
        .env("RELAY_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
