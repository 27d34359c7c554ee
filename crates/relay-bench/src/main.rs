//! `relay-bench`: measures a real `wap-relay` release binary on this machine. Each run starts the
//! binary on a fresh database, sets a tenant up through the admin API, drives load over loopback
//! and prints figures; the load generator, the receivers and Postgres/Redis share the box with
//! the relay, so figures are for this 2-core machine as a whole.
//!
//! - `ingest`: events/s accepted (200) at a given concurrency, with N matching destinations
//!   (the dispatcher role is off so the figure is the ingest path alone).
//! - `latency`: a steady rate of events; time from the ingest request to arrival at the
//!   receiver, p50/p99.
//! - `saturate`: a backlog of events is ingested first, then a dispatcher-only process delivers
//!   it; deliveries/s until the last one lands.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const JWT_SECRET: &str = "bench-jwt-secret-that-is-long-enough-0123456789";
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const WAP_SECRET: &str = "bench-wap-secret";

#[derive(Parser)]
struct Cli {
    /// The relay binary to measure.
    #[arg(long, default_value = "target/release/wap-relay")]
    binary: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Ingest {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 2)]
        destinations: usize,
    },
    Latency {
        #[arg(long, default_value_t = 200)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    Saturate {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 2)]
        destinations: usize,
    },
}

struct Relay {
    child: tokio::process::Child,
    base: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_relay(binary: &str, db: &str, roles: &str) -> anyhow::Result<Relay> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let child = tokio::process::Command::new(binary)
        .arg("serve")
        .env("DATABASE_URL", db)
        .env("RELAY_REDIS_PREFIX", format!("bench:{}:", uuid::Uuid::now_v7().simple()))
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

fn token(role: &str, tenant: Option<&str>) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({"iss": "wap-relay", "aud": "wap-relay-admin", "sub": "bench", "role": role, "iat": now, "exp": now + 86_400});
    if let Some(t) = tenant {
        claims["tenant_id"] = t.into();
    }
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("HS256 encodes")
}

async fn call(
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

/// An unthrottled enterprise tenant with one source and `destinations` destinations.
async fn setup(base: &str, receivers: &[String]) -> anyhow::Result<String> {
    use reqwest::Method;
    let client = reqwest::Client::new();
    let operator = token("operator", None);
    let tenant = call(
        &client,
        Method::POST,
        format!("{base}/v1/tenants"),
        &operator,
        json!({"name": "bench", "plan": "enterprise"}),
    )
    .await?;
    let id = tenant["id"].as_str().context("tenant id")?.to_owned();
    let limits = json!({"limits": {"deliveries_per_second": 1_000_000, "burst": 1_000_000, "backlog": 100_000_000u64}});
    call(&client, Method::PATCH, format!("{base}/v1/tenants/{id}"), &operator, limits).await?;
    let t = token("tenant", Some(&id));
    let source = call(
        &client,
        Method::POST,
        format!("{base}/v1/sources"),
        &t,
        json!({"name": "wap", "secret": WAP_SECRET}),
    )
    .await?;
    for url in receivers {
        call(
            &client,
            Method::POST,
            format!("{base}/v1/destinations"),
            &t,
            json!({"url": url, "max_in_flight": 256}),
        )
        .await?;
    }
    Ok(source["ingest_url"].as_str().context("ingest_url")?.to_owned())
}

fn body(i: usize, run: &str) -> (String, String) {
    let body = json!({"eventId": format!("{run}-{i}"), "type": "message.received", "timestamp": "2026-04-03T12:00:00Z",
                      "deviceId": "dev_1", "message": {"id": format!("m{i}"), "from": "+15559876543", "body": "Hello from the bench"}})
    .to_string();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(WAP_SECRET.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    (body, format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

async fn post(client: &reqwest::Client, url: &str, i: usize, run: &str) -> bool {
    let (body, sig) = body(i, run);
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-wap-signature", sig)
        .body(body)
        .send()
        .await;
    matches!(sent, Ok(r) if r.status() == 200)
}

type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

async fn receiver() -> anyhow::Result<(String, Arrivals)> {
    let arrivals: Arrivals = Arc::default();
    async fn hook(State(a): State<Arrivals>, headers: HeaderMap, _body: Bytes) -> &'static str {
        let id = headers.get("x-wap-event-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        a.lock().expect("arrivals").push((id, Instant::now()));
        "ok"
    }
    let app = axum::Router::new().fallback(hook).with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run_ingest(
    binary: &str,
    db: &str,
    concurrency: usize,
    events: usize,
    destinations: usize,
) -> anyhow::Result<()> {
    let relay = start_relay(binary, db, "ingress,admin").await?;
    let urls: Vec<String> = (0..destinations).map(|i| format!("http://127.0.0.1:9/unused-{i}")).collect();
    let ingest_url = setup(&relay.base, &urls).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    // Warm-up: connections, caches, first WAL segments.
    futures::stream::iter(0..1_000)
        .map(|i| post(&client, &ingest_url, i, "warm"))
        .buffer_unordered(concurrency)
        .count()
        .await;
    let start = Instant::now();
    let ok = futures::stream::iter(0..events)
        .map(|i| post(&client, &ingest_url, i, "run"))
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ingest: {ok}/{events} accepted in {secs:.2} s = {:.0} events/s (concurrency {concurrency}, {destinations} matching destinations, {:.0} deliveries/s written)",
        ok as f64 / secs,
        (ok * destinations) as f64 / secs
    );
    Ok(())
}

async fn run_latency(binary: &str, db: &str, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let relay = start_relay(binary, db, "ingress,admin,dispatcher").await?;
    let (url, arrivals) = receiver().await?;
    let ingest_url = setup(&relay.base, &[url]).await?;
    let client = reqwest::Client::new();
    let total = (rate * seconds) as usize;
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(vec![Instant::now(); total]));
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let (client, ingest_url, sent) = (client.clone(), ingest_url.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            sent.lock().expect("sent")[i] = Instant::now();
            post(&client, &ingest_url, i, "lat").await
        }));
    }
    let accepted =
        futures::future::join_all(tasks).await.into_iter().filter(|r| matches!(r, Ok(true))).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().expect("arrivals").len() < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = sent.lock().expect("sent").clone();
    let mut ms: Vec<f64> = arrivals
        .lock()
        .expect("arrivals")
        .iter()
        .filter_map(|(id, at)| {
            id.strip_prefix("lat-")?
                .parse::<usize>()
                .ok()
                .map(|i| at.duration_since(sent[i]).as_secs_f64() * 1e3)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "latency at {rate} events/s for {seconds} s: {} accepted, {} delivered; ingest request -> receiver p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        accepted,
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

async fn run_saturate(binary: &str, db: &str, events: usize, destinations: usize) -> anyhow::Result<()> {
    let ingress = start_relay(binary, db, "ingress,admin").await?;
    let mut receivers = Vec::new();
    for _ in 0..destinations {
        receivers.push(receiver().await?);
    }
    let urls: Vec<String> = receivers.iter().map(|(u, _)| u.clone()).collect();
    let ingest_url = setup(&ingress.base, &urls).await?;
    let client = reqwest::Client::new();
    let ok = futures::stream::iter(0..events)
        .map(|i| post(&client, &ingest_url, i, "sat"))
        .buffer_unordered(64)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    drop(ingress);
    let expected = ok * destinations;
    let start = Instant::now();
    let _dispatcher = start_relay(binary, db, "dispatcher").await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let delivered = || receivers.iter().map(|(_, a)| a.lock().expect("arrivals").len()).sum::<usize>();
    while delivered() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = delivered();
    println!(
        "saturate: {n}/{expected} deliveries in {secs:.2} s = {:.0} deliveries/s ({ok} events x {destinations} destinations, dispatcher-only process, includes its start-up)",
        n as f64 / secs
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let db = format!("postgres://postgres@127.0.0.1:5432/wap_relay_bench_{}", uuid::Uuid::now_v7().simple());
    let result = match cli.command {
        Command::Ingest { concurrency, events, destinations } => {
            run_ingest(&cli.binary, &db, concurrency, events, destinations).await
        }
        Command::Latency { rate, seconds } => run_latency(&cli.binary, &db, rate, seconds).await,
        Command::Saturate { events, destinations } => {
            run_saturate(&cli.binary, &db, events, destinations).await
        }
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Ok(pool) = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        let name = db.rsplit('/').next().unwrap_or_default();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
            .execute(&pool)
            .await;
    }
    result
}
