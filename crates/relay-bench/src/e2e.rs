//! `relay-bench e2e`: the real workload. One `wap-relay serve` with every role and default
//! settings, N tenants × M destinations on the built-in receiver, signed WAPing events driven
//! closed loop (C senders) or open loop (R/s, latency measured from each request's scheduled time
//! so a stalled relay cannot hide behind a stalled sender), ingest and delivery at once,
//! optionally with a prefilled backlog. After a warm-up that is left to drain, one window of load
//! is measured, then the delivery of everything acknowledged is awaited (drain).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::faults::{self, Fault};
use crate::receiver::{self, Arrivals};
use crate::relay::{self, TenantSetup};
use crate::report::{Report, Window};
use crate::signed::{self, Answer};
use crate::{prefill, probe};

#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    /// Tenants, each with one source.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// Destinations per tenant; every event matches all of its tenant's destinations.
    #[arg(long, default_value_t = 2)]
    pub destinations: usize,
    /// Closed loop: this many senders, each sending its next event when the last is answered.
    #[arg(long, default_value_t = 64, conflicts_with = "rate")]
    pub concurrency: usize,
    /// Open loop: this many events per second, on schedule whatever the answers.
    #[arg(long)]
    pub rate: Option<u64>,
    /// The measured window.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Load before the window (connections, caches); its deliveries drain before the window.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Pending deliveries stored before the relay starts (one extra tenant and destination).
    #[arg(long, default_value_t = 0)]
    pub prefill: usize,
    /// Distinct `deviceId`s the events cycle through.
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Give up waiting for deliveries after this long without a new arrival.
    #[arg(long, default_value_t = 30)]
    pub stall_seconds: u64,
    /// Print the most expensive Postgres statements of the window (needs pg_stat_statements).
    #[arg(long)]
    pub statements: bool,
    /// Destination settings other than the defaults, as JSON (e.g. '{"max_in_flight": 64}'):
    /// for diagnosis only, the targets are measured with defaults.
    #[arg(long, default_value = "{}")]
    pub destination_settings: String,
    /// Source settings other than the defaults, as JSON (e.g. '{"silence_alert_seconds": 60}'):
    /// to measure what an option costs.
    #[arg(long, default_value = "{}")]
    pub source_settings: String,
    /// Inject a fault half-way through the window (CPU and memory are then not reported).
    #[arg(long, value_enum)]
    pub fault: Option<Fault>,
    /// A few seconds of light load that must lose and duplicate nothing (for CI).
    #[arg(long)]
    pub smoke: bool,
    /// Event streams (`GET /v1/stream`) of the first tenant held open without ever reading
    /// them: a slow reader must not slow ingest or delivery.
    #[arg(long, default_value_t = 0)]
    pub slow_streams: usize,
}

const NONE: u8 = 0;
const STORED: u8 = 1;
const DUPLICATE: u8 = 2;
const SHED_RETRY_AFTER: u8 = 3;
const SHED_BARE: u8 = 4;
const OTHER: u8 = 5;
const NO_ANSWER: u8 = 6;
/// 429 (rate limit or backlog cap); counted among the other statuses in the e2e report.
const REFUSED: u8 = 7;

/// What the senders share: the ingest URLs, and per event its send time, latency and answer.
pub struct Load {
    client: reqwest::Client,
    urls: Vec<String>,
    devices: usize,
    next: AtomicUsize,
    /// Nanoseconds after the epoch + 1 at which event `g` was sent (or scheduled).
    pub sent_ns: Vec<AtomicU64>,
    pub latency_us: Vec<AtomicU32>,
    pub answer: Vec<AtomicU8>,
    pub stored: AtomicU64,
    epoch: Instant,
}

impl Load {
    pub(crate) fn new(
        urls: Vec<String>,
        devices: usize,
        capacity: usize,
        epoch: Instant,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().pool_max_idle_per_host(4096).build()?;
        Ok(Self {
            client,
            urls,
            devices: devices.max(1),
            next: AtomicUsize::new(0),
            sent_ns: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            latency_us: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            answer: (0..capacity).map(|_| AtomicU8::new(NONE)).collect(),
            stored: AtomicU64::new(0),
            epoch,
        })
    }

    pub fn sent(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.sent_ns.len())
    }

    pub fn answer_of(&self, g: usize) -> u8 {
        self.answer[g].load(Ordering::Relaxed)
    }

    pub fn is_stored(&self, g: usize) -> bool {
        self.answer_of(g) == STORED
    }

    pub fn is_shed(&self, g: usize) -> bool {
        matches!(self.answer_of(g), SHED_RETRY_AFTER | SHED_BARE)
    }

    pub fn sent_at(&self, g: usize) -> Option<u64> {
        let v = self.sent_ns[g].load(Ordering::Relaxed);
        (v > 0).then(|| v - 1)
    }

    /// Counts of (duplicate answers, 503 with Retry-After, 503 without, other statuses, no answer).
    pub fn answer_counts(&self, range: std::ops::Range<usize>) -> [usize; 5] {
        let mut c = [0; 5];
        for g in range {
            match self.answer_of(g) {
                DUPLICATE => c[0] += 1,
                SHED_RETRY_AFTER => c[1] += 1,
                SHED_BARE => c[2] += 1,
                OTHER | REFUSED => c[3] += 1,
                NO_ANSWER => c[4] += 1,
                _ => {}
            }
        }
        c
    }

    /// Answers 429 among events `range`.
    pub fn refused(&self, range: std::ops::Range<usize>) -> usize {
        range.filter(|&g| self.answer_of(g) == REFUSED).count()
    }

    /// Sends event `g`, counted from `scheduled`.
    async fn send(&self, g: usize, scheduled: Instant) {
        self.sent_ns[g].store(scheduled.duration_since(self.epoch).as_nanos() as u64 + 1, Ordering::Relaxed);
        let url = &self.urls[g % self.urls.len()];
        let answer =
            signed::post(&self.client, url, &format!("e{g}"), &format!("dev_{}", g % self.devices)).await;
        let code = match answer {
            Answer::Stored => STORED,
            Answer::Duplicate => DUPLICATE,
            Answer::Unavailable { retry_after: true } => SHED_RETRY_AFTER,
            Answer::Unavailable { retry_after: false } => SHED_BARE,
            Answer::Other(429) => REFUSED,
            Answer::Other(_) => OTHER,
            Answer::Silent => NO_ANSWER,
        };
        let us = scheduled.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        self.latency_us[g].store(us, Ordering::Relaxed);
        self.answer[g].store(code, Ordering::Relaxed);
        if code == STORED {
            self.stored.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closed loop until `end`: `concurrency` senders, each sending when its last was answered.
    async fn closed(self: &Arc<Self>, concurrency: usize, end: Instant) {
        let senders = (0..concurrency.max(1)).map(|_| {
            let load = self.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    let g = load.next.fetch_add(1, Ordering::Relaxed);
                    if g >= load.sent_ns.len() {
                        break;
                    }
                    load.send(g, Instant::now()).await;
                }
            })
        });
        futures::future::join_all(senders).await;
    }

    /// Open loop: `rate` events per second for `seconds`, each on its own schedule.
    pub(crate) async fn open(self: &Arc<Self>, rate: u64, seconds: u64) {
        let start = Instant::now();
        let total = rate * seconds;
        let mut tasks = Vec::with_capacity(total as usize);
        for k in 0..total {
            let at = start + Duration::from_nanos(k * 1_000_000_000 / rate.max(1));
            tokio::time::sleep_until(at.into()).await;
            let g = self.next.fetch_add(1, Ordering::Relaxed);
            if g >= self.sent_ns.len() {
                break;
            }
            let load = self.clone();
            tasks.push(tokio::spawn(async move { load.send(g, at).await }));
        }
        futures::future::join_all(tasks).await;
    }

    async fn run(self: &Arc<Self>, args: &E2eArgs, seconds: u64) {
        match args.rate {
            Some(rate) => self.open(rate, seconds).await,
            None => self.closed(args.concurrency, Instant::now() + Duration::from_secs(seconds)).await,
        }
    }
}

/// Samples the backlog (acknowledged deliveries not yet arrived) and the relay's RSS.
struct Sampler {
    backlog: Vec<(f64, f64)>,
    rss_max: f64,
}

fn expected(load: &Load, arrivals: &Arrivals, prefill: usize) -> u64 {
    load.stored.load(Ordering::Relaxed) * arrivals.per_event as u64 + prefill as u64
}

fn spawn_sampler(
    load: Arc<Load>,
    arrivals: Arc<Arrivals>,
    prefill: usize,
    pid: u32,
    stop: Arc<AtomicU8>,
) -> tokio::task::JoinHandle<Sampler> {
    tokio::spawn(async move {
        let mut s = Sampler { backlog: Vec::new(), rss_max: 0.0 };
        while stop.load(Ordering::Relaxed) == 0 {
            let backlog =
                expected(&load, &arrivals, prefill) as f64 - arrivals.arrived.load(Ordering::Relaxed) as f64;
            s.backlog.push((arrivals.epoch.elapsed().as_secs_f64(), backlog));
            s.rss_max = s.rss_max.max(probe::rss_mib(pid));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        s
    })
}

/// Waits until every acknowledged delivery arrived, or `stall` passes without a new one.
async fn drain(load: &Load, arrivals: &Arrivals, prefill: usize, stall: Duration) -> bool {
    let mut last = (arrivals.arrived.load(Ordering::Relaxed), Instant::now());
    loop {
        let arrived = arrivals.arrived.load(Ordering::Relaxed);
        if arrived >= expected(load, arrivals, prefill) {
            return true;
        }
        if arrived != last.0 {
            last = (arrived, Instant::now());
        } else if last.1.elapsed() > stall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// CPU and commit counters at one moment.
#[derive(Clone, Copy)]
struct Costs {
    relay_ms: f64,
    postgres_ms: f64,
    commits: f64,
    /// The rest of the machine's load: this process (senders and receiver) and Redis.
    bench_ms: f64,
    redis_ms: f64,
}

async fn costs(pid: u32, pool: &sqlx::PgPool, database: &str) -> Costs {
    Costs {
        relay_ms: probe::process_cpu_ms(pid),
        postgres_ms: probe::postgres_cpu_ms(),
        commits: probe::commits(pool, database).await,
        bench_ms: probe::process_cpu_ms(std::process::id()),
        redis_ms: probe::named_cpu_ms("redis-server"),
    }
}

/// One run on a fresh database; the database is dropped afterwards.
pub async fn run(binary: &str, args: &E2eArgs) -> anyhow::Result<Report> {
    let db = relay::fresh_database();
    let result = run_on(binary, &db, args).await;
    relay::drop_database(&db).await;
    result
}

async fn run_on(binary: &str, db: &str, args: &E2eArgs) -> anyhow::Result<Report> {
    let database = db.rsplit('/').next().unwrap_or_default().to_owned();
    let prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
    let epoch = Instant::now();
    let capacity = match args.rate {
        Some(rate) => (rate * (args.seconds + args.warmup)) as usize + 1,
        None => 20_000 * (args.seconds + args.warmup) as usize + 1,
    };
    let arrivals = Arc::new(Arrivals::new(epoch, capacity, args.tenants, args.destinations, args.prefill));
    let receiver = receiver::start(arrivals.clone()).await?;
    let client = reqwest::Client::new();
    if args.prefill > 0 {
        let setup = relay::start_relay(binary, db, "ingress,admin", &prefix).await?;
        let backlog =
            relay::setup_tenant(&client, &setup.base, "backlog", &[format!("{receiver}/p/0")]).await?;
        prefill::store(db, &backlog, args.prefill).await.context("prefilling the backlog")?;
        setup.stop().await?;
    }
    let relay = relay::start_relay(binary, db, "ingress,admin,dispatcher", &prefix).await?;
    let pid = relay.pid().context("relay pid")?;
    let mut tenants: Vec<TenantSetup> = Vec::with_capacity(args.tenants);
    for t in 0..args.tenants {
        let urls: Vec<String> = (0..args.destinations).map(|d| format!("{receiver}/r/{t}/{d}")).collect();
        let settings = relay::Settings {
            destination: serde_json::from_str(&args.destination_settings)?,
            source: serde_json::from_str(&args.source_settings)?,
        };
        tenants.push(
            relay::setup_tenant_with(&client, &relay.base, &format!("bench-{t}"), &urls, &settings).await?,
        );
    }
    let _unread = relay::open_unread_streams(&relay.base, &tenants[0].id, args.slow_streams).await?;
    let urls = tenants.iter().map(|t| t.ingest_url.clone()).collect();
    let load = Arc::new(Load::new(urls, args.devices, capacity, epoch)?);
    let stall = Duration::from_secs(args.stall_seconds);

    if args.warmup > 0 {
        load.run(args, args.warmup).await;
        drain(&load, &arrivals, 0, stall).await;
    }
    let maintenance = sqlx::PgPool::connect(relay::MAINTENANCE_DB).await?;
    let statements = args.statements && probe::reset_statements(&maintenance).await;
    let g0 = load.sent();
    let stop = Arc::new(AtomicU8::new(0));
    let sampler = spawn_sampler(load.clone(), arrivals.clone(), args.prefill, pid, stop.clone());
    let start_costs = costs(pid, &maintenance, &database).await;
    let t0 = epoch.elapsed();
    let restart = faults::Restart { binary, db, prefix: &prefix };
    let (relay, ()) = match args.fault {
        Some(fault) => {
            let half = Duration::from_secs(args.seconds) / 2;
            let (relay, ()) =
                tokio::join!(faults::inject(fault, relay, half, restart), load.run(args, args.seconds));
            (relay?, ())
        }
        None => (relay, load.run(args, args.seconds).await),
    };
    let t1 = epoch.elapsed();
    let window_costs = costs(pid, &maintenance, &database).await;
    let drained = drain(&load, &arrivals, args.prefill, stall).await;
    let t_drained = epoch.elapsed();
    stop.store(1, Ordering::Relaxed);
    let sampled = sampler.await?;
    // Postgres publishes a backend's counters up to a second after its transactions (more when
    // it goes idle): wait for them before the last reading.
    if !args.smoke {
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    let end_costs = costs(pid, &maintenance, &database).await;
    let mut top =
        if statements { probe::top_statements(&maintenance, &database, 12).await } else { Vec::new() };
    if statements {
        top.extend(probe::table_stats(db).await);
    }
    let rss_end = probe::rss_mib(pid);
    relay.stop().await.ok();

    let window = Window { g0, g1: load.sent(), t0, t1, t_drained, drained };
    let spent =
        |a: Costs, b: Costs| (b.relay_ms - a.relay_ms, b.postgres_ms - a.postgres_ms, b.commits - a.commits);
    let others = (window_costs.bench_ms - start_costs.bench_ms, window_costs.redis_ms - start_costs.redis_ms);
    Ok(Report::build(crate::report::Inputs {
        args,
        load: &load,
        arrivals: &arrivals,
        window,
        backlog: &sampled.backlog,
        rss_max: sampled.rss_max.max(rss_end),
        rss_end,
        window_costs: spent(start_costs, window_costs),
        whole_costs: spent(start_costs, end_costs),
        others,
        statements: top,
    }))
}
