//! The victim tenant: `pro` plan, one source, two destinations on the exact receiver of
//! `receiver.rs`, and a steady open-loop load (`e2e`'s `Load`, latency from each request's
//! scheduled time). Its figures come from `e2e`'s report code over the measured window.
//!
//! The victim's delivery and ingest rates are raised above its load (an operator override):
//! 300 events/s to 2 destinations is 600 deliveries/s, past the `pro` plan's 200, and the
//! benchmark measures what a neighbour costs the victim, not the victim's own plan limits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::e2e::{E2eArgs, Load};
use crate::receiver::{self, Arrivals};
use crate::relay;
use crate::report::{Inputs, Report, Window};

/// Destinations of the victim; every event goes to both.
const DESTINATIONS: usize = 2;
/// Distinct `deviceId`s the victim's events cycle through.
const DEVICES: usize = 100;

/// The victim's load: `rate` events/s for `warmup` s (left to drain), then the `seconds` window.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub rate: u64,
    pub warmup: u64,
    pub seconds: u64,
}

/// The victim's figures over one window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VictimFigures {
    pub rate: u64,
    pub sent: usize,
    pub accepted: usize,
    pub ingest_p50_ms: f64,
    pub ingest_p99_ms: f64,
    pub end_to_end_p99_ms: f64,
    pub refused_429: usize,
    pub unavailable_503: usize,
    /// Statuses other than 200, 429 and 503, and requests with no answer.
    pub other: usize,
    /// Acknowledged deliveries (warm-up included) that had not arrived when the drain ended.
    pub lost: usize,
    pub drain_seconds: Option<f64>,
}

/// The victim of one run.
pub struct Victim {
    pub load: Arc<Load>,
    pub arrivals: Arc<Arrivals>,
    epoch: Instant,
}

impl Victim {
    /// Starts the receiver and sets the victim up on the relay at `base`. Its events go to
    /// `base` and, in turn, to each of `other_bases` (other processes of the same fleet).
    pub async fn start(
        client: &reqwest::Client,
        base: &str,
        other_bases: &[&str],
        schedule: Schedule,
        epoch: Instant,
    ) -> anyhow::Result<Self> {
        let capacity = (schedule.rate * (schedule.warmup + schedule.seconds)) as usize + 1;
        let arrivals = Arc::new(Arrivals::new(epoch, capacity, 1, DESTINATIONS, 0));
        let receiver = receiver::start(arrivals.clone()).await?;
        let above = (schedule.rate * 4).max(1_000);
        let limits = json!({"deliveries_per_second": above * DESTINATIONS as u64, "burst": above * DESTINATIONS as u64,
            "ingest_per_second": above, "ingest_burst": above});
        let id = relay::create_tenant(client, base, "victim", "pro", limits).await?;
        let token = relay::token("tenant", Some(&id));
        let source = relay::create_source(client, base, &token, json!({})).await?;
        for d in 0..DESTINATIONS {
            let url = format!("{receiver}/r/0/{d}");
            relay::create_destination(client, base, &token, &url, json!({})).await?;
        }
        let url = source["ingest_url"].as_str().context("ingest_url")?.to_owned();
        let path = url.strip_prefix(base).context("ingest_url under the relay's base")?.to_owned();
        let urls = std::iter::once(url).chain(other_bases.iter().map(|b| format!("{b}{path}"))).collect();
        let load = Arc::new(Load::new(urls, DEVICES, capacity, epoch)?);
        Ok(Self { load, arrivals, epoch })
    }

    /// The warm-up load, then a wait for its deliveries (at most 10 s without an arrival).
    pub async fn warm_up(&self, schedule: Schedule) {
        if schedule.warmup > 0 {
            self.load.open(schedule.rate, schedule.warmup).await;
            self.wait_for_acknowledged(Duration::from_secs(10)).await;
        }
    }

    /// Where the window starts: the next event and the time.
    pub fn mark(&self) -> (usize, Duration) {
        (self.load.sent(), self.epoch.elapsed())
    }

    /// Waits for every acknowledged delivery (or `stall` without an arrival) after the window
    /// `start..t1`, and returns the window.
    pub async fn drain(&self, start: (usize, Duration), t1: Duration, stall: Duration) -> Window {
        let g1 = self.load.sent();
        let drained = self.wait_for_acknowledged(stall).await;
        Window { g0: start.0, g1, t0: start.1, t1, t_drained: self.epoch.elapsed(), drained }
    }

    /// Waits until every delivery of an acknowledged event has arrived, or `stall` passes
    /// without an arrival. (Not `e2e`'s count of arrivals: with a process killed, deliveries of
    /// events it stored but never acknowledged arrive too, and would end the wait early.)
    async fn wait_for_acknowledged(&self, stall: Duration) -> bool {
        let mut last = (self.arrivals.arrived.load(Ordering::Relaxed), Instant::now());
        while self.missing() > 0 {
            let arrived = self.arrivals.arrived.load(Ordering::Relaxed);
            if arrived != last.0 {
                last = (arrived, Instant::now());
            } else if last.1.elapsed() > stall {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Deliveries of acknowledged events that have not arrived.
    fn missing(&self) -> usize {
        let missing = |g| (0..DESTINATIONS).filter(|&d| self.arrivals.fresh_at(g, d).is_none()).count();
        (0..self.load.sent()).filter(|&g| self.load.is_stored(g)).map(missing).sum()
    }

    /// The victim's figures over `window`, through `e2e`'s report.
    pub fn figures(&self, schedule: Schedule, window: Window) -> VictimFigures {
        let range = window.g0..window.g1;
        let args = e2e_args(schedule);
        let report = Report::build(Inputs {
            args: &args,
            load: &self.load,
            arrivals: &self.arrivals,
            window,
            backlog: &[],
            rss_max: 0.0,
            rss_end: 0.0,
            window_costs: (0.0, 0.0, 0.0),
            whole_costs: (0.0, 0.0, 0.0),
            others: (0.0, 0.0),
            statements: Vec::new(),
        });
        let refused = self.load.refused(range);
        VictimFigures {
            rate: schedule.rate,
            sent: report.sent,
            accepted: report.accepted,
            ingest_p50_ms: report.ingest_ms.p50,
            ingest_p99_ms: report.ingest_ms.p99,
            end_to_end_p99_ms: report.end_to_end_ms.p99,
            refused_429: refused,
            unavailable_503: report.shed_503_with_retry_after + report.shed_503_without_retry_after,
            other: report.other_status - refused + report.no_answer,
            lost: report.lost,
            drain_seconds: report.drain_seconds,
        }
    }

    /// For the deliveries of events acknowledged and scheduled before `at` (ns after the epoch):
    /// how many such events there are, how many of their deliveries never arrived, and, when
    /// all did, the seconds from `at` until the last one arrived.
    pub fn arrived_after(&self, at: u64) -> (usize, usize, Option<f64>) {
        let (mut acknowledged, mut missing, mut latest) = (0, 0, at);
        for g in 0..self.load.sent() {
            if !self.load.is_stored(g) || self.load.sent_at(g).is_none_or(|s| s > at) {
                continue;
            }
            acknowledged += 1;
            for d in 0..DESTINATIONS {
                match self.arrivals.fresh_at(g, d) {
                    Some(t) => latest = latest.max(t),
                    None => missing += 1,
                }
            }
        }
        (acknowledged, missing, (missing == 0).then(|| (latest - at) as f64 / 1e9))
    }
}

/// The `e2e` arguments that describe the victim's load, for its report.
fn e2e_args(schedule: Schedule) -> E2eArgs {
    E2eArgs {
        tenants: 1,
        destinations: DESTINATIONS,
        concurrency: 0,
        rate: Some(schedule.rate),
        seconds: schedule.seconds,
        warmup: schedule.warmup,
        prefill: 0,
        devices: DEVICES,
        stall_seconds: 30,
        statements: false,
        destination_settings: "{}".to_owned(),
        source_settings: "{}".to_owned(),
        fault: None,
        smoke: false,
        slow_streams: 0,
    }
}
