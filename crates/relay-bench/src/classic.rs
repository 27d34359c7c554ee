//! The two part-by-part measurements: the ingest path with the dispatcher role off, and a
//! dispatcher-only process draining a queue filled beforehand. They isolate one side each; the
//! `e2e` command measures both at once, as users run the relay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::receiver::{self, Arrivals};
use crate::relay;
use crate::signed::{self, Answer};

async fn send_all(
    client: &reqwest::Client,
    url: &str,
    ids: std::ops::Range<usize>,
    concurrency: usize,
) -> usize {
    futures::stream::iter(ids)
        .map(|i| async move { signed::post(client, url, &format!("e{i}"), "dev_1").await })
        .buffer_unordered(concurrency)
        .filter(|a| std::future::ready(*a == Answer::Stored))
        .count()
        .await
}

pub async fn ingest(
    binary: &str,
    concurrency: usize,
    events: usize,
    destinations: usize,
) -> anyhow::Result<()> {
    let db = relay::fresh_database();
    let prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
    let relay = relay::start_relay(binary, &db, "ingress,admin", &prefix).await?;
    let urls: Vec<String> = (0..destinations).map(|i| format!("http://127.0.0.1:9/unused-{i}")).collect();
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let tenant = relay::setup_tenant(&client, &relay.base, "bench", &urls).await?;
    // Warm-up: connections, caches, first WAL segments.
    send_all(&client, &tenant.ingest_url, events..events + 1_000, concurrency).await;
    let start = Instant::now();
    let ok = send_all(&client, &tenant.ingest_url, 0..events, concurrency).await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ingest: {ok}/{events} accepted in {secs:.2} s = {:.0} events/s (concurrency {concurrency}, {destinations} matching destinations, {:.0} deliveries/s written)",
        ok as f64 / secs,
        (ok * destinations) as f64 / secs
    );
    drop(relay);
    relay::drop_database(&db).await;
    Ok(())
}

pub async fn saturate(binary: &str, events: usize, destinations: usize) -> anyhow::Result<()> {
    let db = relay::fresh_database();
    let prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
    let ingress = relay::start_relay(binary, &db, "ingress,admin", &prefix).await?;
    let arrivals = Arc::new(Arrivals::new(Instant::now(), events, 1, destinations, 0));
    let base = receiver::start(arrivals.clone()).await?;
    let urls: Vec<String> = (0..destinations).map(|d| format!("{base}/r/0/{d}")).collect();
    let client = reqwest::Client::new();
    let tenant = relay::setup_tenant(&client, &ingress.base, "bench", &urls).await?;
    let ok = send_all(&client, &tenant.ingest_url, 0..events, 64).await;
    drop(ingress);
    let expected = (ok * destinations) as u64;
    let start = Instant::now();
    let dispatcher = relay::start_relay(binary, &db, "dispatcher", &prefix).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let delivered = || arrivals.arrived.load(std::sync::atomic::Ordering::Relaxed);
    while delivered() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "saturate: {}/{expected} deliveries in {secs:.2} s = {:.0} deliveries/s ({ok} events x {destinations} destinations, dispatcher-only process, includes its start-up)",
        delivered(),
        delivered() as f64 / secs
    );
    drop(dispatcher);
    relay::drop_database(&db).await;
    Ok(())
}
