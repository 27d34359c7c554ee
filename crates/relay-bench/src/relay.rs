//! The relay under measurement: a `wap-relay serve` child process on a fresh database, admin
//! tokens minted with the bench's JWT secret, and the tenant setup done through the admin API
//! (so the relay is configured exactly as a user would configure it).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub const JWT_SECRET: &str = "bench-jwt-secret-that-is-long-enough-0123456789";
pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const WAP_SECRET: &str = "bench-wap-secret";
/// The server's maintenance database: fresh bench databases are created and dropped through it.
pub const MAINTENANCE_DB: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A running relay process; killed when dropped.
pub struct Relay {
    pub child: tokio::process::Child,
    pub base: String,
}

impl Relay {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    /// SIGTERM, then waits for the process to exit (it drains first).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.context("relay stop")??;
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A fresh database name for one run.
pub fn fresh_database() -> String {
    format!("postgres://postgres@127.0.0.1:5432/wap_relay_bench_{}", uuid::Uuid::now_v7().simple())
}

/// Drops a run's database.
pub async fn drop_database(db: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(MAINTENANCE_DB).await {
        let name = db.rsplit('/').next().unwrap_or_default();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
            .execute(&pool)
            .await;
    }
}

/// Starts `wap-relay serve` with `roles` on a free port and waits until it is ready. Every
/// setting not named here is the relay's default.
pub async fn start_relay(binary: &str, db: &str, roles: &str, redis_prefix: &str) -> anyhow::Result<Relay> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    start_relay_on(binary, db, roles, redis_prefix, port).await
}

/// As [`start_relay`], on a given port.
pub async fn start_relay_on(
    binary: &str,
    db: &str,
    roles: &str,
    redis_prefix: &str,
    port: u16,
) -> anyhow::Result<Relay> {
    let base = format!("http://127.0.0.1:{port}");
    let child = tokio::process::Command::new(binary)
        .arg("serve")
        .env("DATABASE_URL", db)
        .env("RELAY_REDIS_PREFIX", redis_prefix)
        .env("RELAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("RELAY_PUBLIC_URL", &base)
        .env("RELAY_JWT_SECRET", JWT_SECRET)
        .env("RELAY_MASTER_KEY", MASTER_KEY)
        .env("RELAY_ALLOW_PRIVATE_DESTINATIONS", "true")
        .env("RELAY_ROLES", roles)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {binary} (build it with `cargo build --release`)"))?;
    let relay = Relay { child, base };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{}/readyz", relay.base)).send().await.map(|r| r.status() != 200).unwrap_or(true)
    {
        if Instant::now() > deadline {
            bail!("the relay did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(relay)
}

/// An admin token signed with the bench's JWT secret.
pub fn token(role: &str, tenant: Option<&str>) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({"iss": "wap-relay", "aud": "wap-relay-admin", "sub": "bench", "role": role, "iat": now, "exp": now + 86_400});
    if let Some(t) = tenant {
        claims["tenant_id"] = t.into();
    }
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("HS256 encodes")
}

/// One admin API call; an error status is an error.
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let response = client.request(method, url).bearer_auth(token).json(&body).send().await?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("admin API answered {status}: {value}");
    }
    Ok(value)
}

/// One tenant as set up for a run.
#[derive(Debug, Clone)]
pub struct TenantSetup {
    pub id: String,
    pub ingest_url: String,
    pub destination_ids: Vec<String>,
}

/// An enterprise tenant whose throughput limits are lifted (the bench measures the relay, not
/// the plan), with one source and one destination per URL, each with default settings.
pub async fn setup_tenant(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    urls: &[String],
) -> anyhow::Result<TenantSetup> {
    setup_tenant_with(client, base, name, urls, &Settings::default()).await
}

/// Settings other than the defaults, for diagnosis and for the cost of the options.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// In every destination (e.g. `{"max_in_flight": 64}`).
    pub destination: Value,
    /// In the source (e.g. `{"silence_alert_seconds": 60}`).
    pub source: Value,
}

/// As [`setup_tenant`], with `settings` in the source and every destination.
pub async fn setup_tenant_with(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    urls: &[String],
    settings: &Settings,
) -> anyhow::Result<TenantSetup> {
    let limits = json!({"deliveries_per_second": 1_000_000, "burst": 1_000_000,
        "ingest_per_second": 1_000_000, "ingest_burst": 1_000_000,
        "backlog": 100_000_000u64, "destinations": urls.len().max(1)});
    let id = create_tenant(client, base, name, "enterprise", limits).await?;
    let t = token("tenant", Some(&id));
    let source = create_source(client, base, &t, settings.source.clone()).await?;
    let mut destination_ids = Vec::with_capacity(urls.len());
    for url in urls {
        destination_ids.push(create_destination(client, base, &t, url, settings.destination.clone()).await?);
    }
    let ingest_url = source["ingest_url"].as_str().context("ingest_url")?.to_owned();
    Ok(TenantSetup { id, ingest_url, destination_ids })
}

/// A tenant on `plan` (as the operator creates it), with `limits` laid over the plan's when it
/// is an object; returns its id.
pub async fn create_tenant(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    plan: &str,
    limits: Value,
) -> anyhow::Result<String> {
    use reqwest::Method;
    let operator = token("operator", None);
    let tenant = call(
        client,
        Method::POST,
        format!("{base}/v1/tenants"),
        &operator,
        json!({"name": name, "plan": plan}),
    )
    .await?;
    let id = tenant["id"].as_str().context("tenant id")?.to_owned();
    if limits.is_object() {
        let body = json!({ "limits": limits });
        call(client, Method::PATCH, format!("{base}/v1/tenants/{id}"), &operator, body).await?;
    }
    Ok(id)
}

/// A source named `wap` signed with [`WAP_SECRET`], with `settings` (an object, or null for the
/// defaults) in its body; returns the source as the API shows it.
pub async fn create_source(
    client: &reqwest::Client,
    base: &str,
    tenant_token: &str,
    settings: Value,
) -> anyhow::Result<Value> {
    let mut body = if settings.is_object() { settings } else { json!({}) };
    if body.get("name").is_none() {
        body["name"] = "wap".into();
    }
    body["secret"] = WAP_SECRET.into();
    call(client, reqwest::Method::POST, format!("{base}/v1/sources"), tenant_token, body).await
}

/// A destination to `url` with `settings` (an object, or null for the defaults); returns its id.
pub async fn create_destination(
    client: &reqwest::Client,
    base: &str,
    tenant_token: &str,
    url: &str,
    settings: Value,
) -> anyhow::Result<String> {
    let mut body = if settings.is_object() { settings } else { json!({}) };
    body["url"] = url.into();
    let d =
        call(client, reqwest::Method::POST, format!("{base}/v1/destinations"), tenant_token, body).await?;
    Ok(d["id"].as_str().context("destination id")?.to_owned())
}

/// Opens `n` event streams of `tenant` and never reads them (the sockets are held until
/// dropped): the relay must neither buffer without bound nor slow anything else down for them.
pub async fn open_unread_streams(
    base: &str,
    tenant: &str,
    n: usize,
) -> anyhow::Result<Vec<tokio::net::TcpStream>> {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let token = token("tenant", Some(tenant));
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut socket = tokio::net::TcpStream::connect(&addr).await?;
        let request = format!(
            "GET /v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await?;
        streams.push(socket);
    }
    Ok(streams)
}
