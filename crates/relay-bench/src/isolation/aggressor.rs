//! The aggressor scenarios (a)–(g) of issue 19: a second tenant, on the `pro` plan with its
//! plan's limits unless a scenario says otherwise, set up through the admin API on the run's
//! relay, then its traffic started. Each scenario is one way a tenant acting within its plan
//! (or, in (e), within an operator's override) loads a resource the victim shares.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::sink::Hits;
use super::traffic::{self, Figures, Tally, Tasks};
use crate::prefill;
use crate::relay::{self, TenantSetup};

/// The aggressor scenarios; (h) is a fault, not a tenant, and runs in `crash.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
pub enum Scenario {
    /// A per-device ordered destination answering 500, 100,000 held deliveries of one device.
    #[value(name = "a")]
    HeldDevice,
    /// Slow endpoints: every destination of the plan answering after 30 s, `timeout_ms` 30000.
    #[value(name = "b")]
    SlowEndpoints,
    /// 1 MB events, 32 concurrent senders.
    #[value(name = "c")]
    LargeEvents,
    /// 32 concurrent heavy admin reads.
    #[value(name = "d")]
    AdminReads,
    /// A flood of refused events (backlog cap 2) on a source with silence alerts.
    #[value(name = "e")]
    RefusedFlood,
    /// 10 streams filtered to a quiet source.
    #[value(name = "f")]
    QuietStreams,
    /// 20 Meta-format destinations.
    #[value(name = "g")]
    MetaDestinations,
    /// SIGKILL of one of two processes while the victim sends 1,000 events/s.
    #[value(name = "h")]
    Sigkill,
}

impl Scenario {
    pub fn label(self) -> &'static str {
        match self {
            Scenario::HeldDevice => "(a) per_device 500, held",
            Scenario::SlowEndpoints => "(b) slow endpoints 30 s",
            Scenario::LargeEvents => "(c) 1 MB events x32",
            Scenario::AdminReads => "(d) 32 admin reads",
            Scenario::RefusedFlood => "(e) refused flood + silence",
            Scenario::QuietStreams => "(f) 10 quiet streams",
            Scenario::MetaDestinations => "(g) 20 Meta destinations",
            Scenario::Sigkill => "(h) SIGKILL 1 of 2",
        }
    }
}

/// What an aggressor needs from its run.
pub struct Env<'a> {
    pub client: reqwest::Client,
    pub base: &'a str,
    pub db: &'a str,
    /// The sink's base URL and its counters.
    pub sink: &'a str,
    pub hits: Arc<Hits>,
    pub smoke: bool,
}

/// A started aggressor: its tasks, the tallies of its requests and the figures fixed at setup.
pub struct Aggressor {
    tasks: Tasks,
    tallies: Vec<(&'static str, Arc<Tally>)>,
    hits: Arc<Hits>,
    fixed: Figures,
}

impl Aggressor {
    fn tally(&mut self, what: &'static str) -> Arc<Tally> {
        let tally = Arc::new(Tally::default());
        self.tallies.push((what, tally.clone()));
        tally
    }

    /// Stops the traffic and returns what the aggressor achieved.
    pub async fn finish(self) -> Figures {
        self.tasks.stop(Duration::from_secs(2)).await;
        let mut out = self.fixed;
        for (what, tally) in &self.tallies {
            tally.figures(what, &mut out);
        }
        let hits = [
            ("sink 2xx", &self.hits.ok),
            ("sink 500", &self.hits.failed),
            ("slow requests", &self.hits.slow_started),
            ("slow answered", &self.hits.slow_answered),
        ];
        for (name, counter) in hits {
            out.insert(name.to_owned(), Hits::get(counter));
        }
        out.retain(|_, v| *v != 0.0);
        out
    }
}

/// Sets `scenario`'s aggressor up on the run's relay and starts its traffic.
pub async fn start(scenario: Scenario, env: &Env<'_>) -> anyhow::Result<Aggressor> {
    let mut a = Aggressor {
        tasks: Tasks::default(),
        tallies: Vec::new(),
        hits: env.hits.clone(),
        fixed: Figures::new(),
    };
    match scenario {
        Scenario::HeldDevice => held_device(env, &mut a).await?,
        Scenario::SlowEndpoints => slow_endpoints(env, &mut a).await?,
        Scenario::LargeEvents => large_events(env, &mut a).await?,
        Scenario::AdminReads => admin_reads(env, &mut a).await?,
        Scenario::RefusedFlood => refused_flood(env, &mut a).await?,
        Scenario::QuietStreams => quiet_streams(env, &mut a).await?,
        Scenario::MetaDestinations => meta_destinations(env, &mut a).await?,
        Scenario::Sigkill => bail!("(h) is not an aggressor tenant"),
    }
    Ok(a)
}

/// The aggressor tenant (`pro`, `limits` laid over the plan's), one source with `source`
/// settings, and one destination per (sink path, settings).
async fn tenant(
    env: &Env<'_>,
    limits: Value,
    source: Value,
    destinations: &[(String, Value)],
) -> anyhow::Result<TenantSetup> {
    let id = relay::create_tenant(&env.client, env.base, "aggressor", "pro", limits).await?;
    let token = relay::token("tenant", Some(&id));
    let source = relay::create_source(&env.client, env.base, &token, source).await?;
    let mut destination_ids = Vec::new();
    for (path, settings) in destinations {
        let url = format!("{}/{path}", env.sink);
        destination_ids
            .push(relay::create_destination(&env.client, env.base, &token, &url, settings.clone()).await?);
    }
    let ingest_url = source["ingest_url"].as_str().context("ingest_url")?.to_owned();
    Ok(TenantSetup { id, ingest_url, destination_ids })
}

/// `n` destinations on the sink at `{path}/{i}`, each with `settings`.
fn on_sink(path: &str, n: usize, settings: Value) -> Vec<(String, Value)> {
    (0..n).map(|i| (format!("{path}/{i}"), settings.clone())).collect()
}

/// Events of 100 device ids.
fn spread_devices() -> traffic::Body {
    traffic::small(|k| format!("dev_{}", k % 100))
}

/// (a): the held deliveries are stored through relay-store's own ingest write (`prefill.rs`:
/// one device, each delivery keyed to it as ingest keys them), the database is analysed (as
/// autovacuum would, so the planner sees the held rows), then 10 events/s of that device.
async fn held_device(env: &Env<'_>, a: &mut Aggressor) -> anyhow::Result<()> {
    let held = if env.smoke { 2_000 } else { 100_000 };
    let ordered = json!({"ordering": "per_device"});
    let t = tenant(env, Value::Null, Value::Null, &on_sink("fail", 1, ordered)).await?;
    let ordering = relay_core::vocab::DeliveryOrdering::PerDevice;
    prefill::store_ordered(env.db, &t, held, ordering).await.context("storing the held deliveries")?;
    let pool = sqlx::PgPool::connect(env.db).await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    pool.close().await;
    a.fixed.insert("held deliveries".to_owned(), held as f64);
    let tally = a.tally("trickle");
    a.tasks.post_open(&env.client, &t.ingest_url, 10, traffic::small(|_| prefill::DEVICE.to_owned()), &tally);
    Ok(())
}

/// (b): the plan's 25 destinations (4 in smoke mode), each with `timeout_ms` 30000 and the
/// default `max_in_flight`, on an endpoint that answers after 30 s; 40 events/s to them.
async fn slow_endpoints(env: &Env<'_>, a: &mut Aggressor) -> anyhow::Result<()> {
    let n = if env.smoke { 4 } else { 25 };
    let slow = json!({"timeout_ms": 30_000});
    let t = tenant(env, Value::Null, Value::Null, &on_sink("slow", n, slow)).await?;
    a.fixed.insert("slow destinations".to_owned(), n as f64);
    let tally = a.tally("events");
    a.tasks.post_open(&env.client, &t.ingest_url, 40, spread_devices(), &tally);
    Ok(())
}

/// (d): history first (events stored through `prefill.rs` and delivered to the sink, the
/// aggressor's delivery rate lifted so that takes seconds; it posts nothing afterwards), then 32 readers looping over the stats, a
/// filtered event list and a filtered delivery list.
async fn admin_reads(env: &Env<'_>, a: &mut Aggressor) -> anyhow::Result<()> {
    let history = if env.smoke { 1_000 } else { 20_000 };
    let lifted = json!({"deliveries_per_second": 100_000, "burst": 100_000});
    let t = tenant(env, lifted, Value::Null, &on_sink("ok", 1, Value::Null)).await?;
    prefill::store(env.db, &t, history).await.context("storing the history")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while env.hits.ok.load(Ordering::Relaxed) < history as u64 {
        if Instant::now() > deadline {
            bail!("the aggressor's history was not delivered within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.hits.ok.store(0, Ordering::Relaxed);
    a.fixed.insert("history events".to_owned(), history as f64);
    let source = t.ingest_url.rsplit('/').next().context("source id")?;
    let base = env.base;
    let urls = [
        format!("{base}/v1/stats"),
        format!(
            "{base}/v1/events?source_id={source}&type=message.received&device_id={}&limit=250",
            prefill::DEVICE
        ),
        format!("{base}/v1/deliveries?status=succeeded&destination_id={}&limit=250", t.destination_ids[0]),
    ];
    let tally = a.tally("reads");
    a.tasks.read_loop(&env.client, &relay::token("tenant", Some(&t.id)), &urls, 32, &tally);
    Ok(())
}

/// (f): a second, quiet source that never gets an event; 10 streams filtered to it, read as
/// they come; 100 events/s to the tenant's other source (one destination on the sink).
async fn quiet_streams(env: &Env<'_>, a: &mut Aggressor) -> anyhow::Result<()> {
    let t = tenant(env, Value::Null, Value::Null, &on_sink("ok", 1, Value::Null)).await?;
    let token = relay::token("tenant", Some(&t.id));
    let quiet = relay::create_source(&env.client, env.base, &token, json!({"name": "quiet"})).await?;
    let quiet = quiet["id"].as_str().context("source id")?;
    let streams = a.tally("streams");
    let url = format!("{}/v1/stream?source_id={quiet}", env.base);
    a.tasks.streams(&env.client, &token, &url, 10, &streams);
    let events = a.tally("events");
    a.tasks.post_open(&env.client, &t.ingest_url, 100, spread_devices(), &events);
    Ok(())
}

/// (c): events of about 1 MB from 32 concurrent senders, closed loop; one fast destination.
async fn large_events(env: &Env<'_>, a: &mut Aggressor) -> anyhow::Result<()> {
    let t = tenant(env, Value::Null, Value::Null, &on_sink("ok", 1, Value::Null)).await?;
    let tally = a.tally("events");
    a.tasks.post_closed(&env.client, &t.ingest_url, 32, traffic::large(), &tally);
    Ok(())
}

/// (e): the operator sets the backlog cap to 2 and the one destination answers 500, so the
/// backlog stays full; 32 concurrent senders on a source with silence alerts, 1,000 device ids:
/// nearly every event is refused (429).
async fn refused_flood(env: &Env<'_>, a: &mut Aggressor) -> anyhow::Result<()> {
    let source = json!({"silence_alert_seconds": 60});
    let t = tenant(env, json!({"backlog": 2}), source, &on_sink("fail", 1, Value::Null)).await?;
    let tally = a.tally("events");
    let body = traffic::small(|k| format!("dev_{}", k % 1_000));
    a.tasks.post_closed(&env.client, &t.ingest_url, 32, body, &tally);
    Ok(())
}

/// (g): 20 destinations in Meta's format; 100 `message.received` events/s to them.
async fn meta_destinations(env: &Env<'_>, a: &mut Aggressor) -> anyhow::Result<()> {
    let meta = json!({"format": "meta_cloud_api", "meta": {"phone_number_id": "106540352242922"}});
    let t = tenant(env, Value::Null, Value::Null, &on_sink("ok", 20, meta)).await?;
    let tally = a.tally("events");
    a.tasks.post_open(&env.client, &t.ingest_url, 100, spread_devices(), &tally);
    Ok(())
}
