//! The figures of one e2e run, computed from the per-event records after the run: a table for
//! people and the same as JSON for scripts, plus the median and spread of several runs.

use std::time::Duration;

use serde::Serialize;

use crate::e2e::{E2eArgs, Load};
use crate::receiver::Arrivals;

/// The measured window: events `g0..g1` were sent in `t0..t1` (after the epoch).
pub struct Window {
    pub g0: usize,
    pub g1: usize,
    pub t0: Duration,
    pub t1: Duration,
    pub t_drained: Duration,
    pub drained: bool,
}

pub struct Inputs<'a> {
    pub args: &'a E2eArgs,
    pub load: &'a Load,
    pub arrivals: &'a Arrivals,
    pub window: Window,
    pub backlog: &'a [(f64, f64)],
    pub rss_max: f64,
    pub rss_end: f64,
    /// (relay CPU ms, Postgres CPU ms, commits) over the window, and from its start to the end
    /// of the drain.
    pub window_costs: (f64, f64, f64),
    pub whole_costs: (f64, f64, f64),
    /// CPU ms over the window of the bench process itself and of Redis.
    pub others: (f64, f64),
    pub statements: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub(crate) fn of(mut ms: Vec<f64>) -> Self {
        if ms.is_empty() {
            return Self::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        Self { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: ms[ms.len() - 1] }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    /// The fault injected half-way, if any (CPU and memory figures are then zero: not measured).
    pub fault: Option<String>,
    pub tenants: usize,
    pub destinations_per_tenant: usize,
    pub prefill: usize,
    pub seconds: f64,
    pub sent: usize,
    pub accepted: usize,
    pub answered_duplicate: usize,
    pub shed_503_with_retry_after: usize,
    pub shed_503_without_retry_after: usize,
    pub other_status: usize,
    pub no_answer: usize,
    pub accepted_per_second: f64,
    pub delivered_per_second: f64,
    pub backlog_at_start: f64,
    pub backlog_at_end: f64,
    pub backlog_slope_per_second: f64,
    pub backlog_grew: bool,
    pub lost: usize,
    pub duplicate_deliveries: u64,
    pub stray_requests: u64,
    pub unacknowledged_delivered: usize,
    pub ingest_ms: Percentiles,
    pub shed_ms: Percentiles,
    pub end_to_end_ms: Percentiles,
    pub drain_seconds: Option<f64>,
    pub relay_rss_max_mib: f64,
    pub relay_rss_end_mib: f64,
    pub relay_cpu_ms_per_event: f64,
    pub postgres_cpu_ms_per_event: f64,
    pub cpu_ms_per_event: f64,
    pub relay_cpu_ms_per_event_with_drain: f64,
    pub postgres_cpu_ms_per_event_with_drain: f64,
    pub commits_per_event: f64,
    pub bench_cpu_ms_per_event: f64,
    pub redis_cpu_ms_per_event: f64,
    pub statements: Vec<String>,
}

fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) =
        points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den }
}

impl Report {
    pub fn build(i: Inputs<'_>) -> Self {
        let w = &i.window;
        let (t0, t1) = (w.t0.as_nanos() as u64, w.t1.as_nanos() as u64);
        let secs = (w.t1 - w.t0).as_secs_f64();
        let m = i.arrivals.per_event;
        let in_window = |at: Option<u64>| at.is_some_and(|a| a >= t0 && a <= t1);
        let (mut accepted, mut lost, mut unacked, mut delivered) = (0, 0, 0, 0);
        let (mut ingest, mut shed, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
        for g in 0..i.load.sent() {
            let stored = i.load.is_stored(g);
            let measured = g >= w.g0 && g < w.g1;
            let latency = f64::from(i.load.latency_us[g].load(std::sync::atomic::Ordering::Relaxed)) / 1e3;
            if measured && stored {
                accepted += 1;
                ingest.push(latency);
            } else if measured && i.load.is_shed(g) {
                shed.push(latency);
            }
            let sent = i.load.sent_at(g).unwrap_or(0);
            for d in 0..m {
                let at = i.arrivals.fresh_at(g, d);
                delivered += usize::from(in_window(at));
                match at {
                    None if stored => lost += 1,
                    Some(_) if !stored => unacked += 1,
                    Some(a) if measured => e2e.push(a.saturating_sub(sent) as f64 / 1e6),
                    _ => {}
                }
            }
        }
        for at in i.arrivals.prefill_times() {
            delivered += usize::from(in_window(at));
            lost += usize::from(at.is_none());
        }
        let answers = i.load.answer_counts(w.g0..w.g1);
        let window_points: Vec<(f64, f64)> = i
            .backlog
            .iter()
            .copied()
            .filter(|(t, _)| *t >= w.t0.as_secs_f64() && *t <= w.t1.as_secs_f64())
            .collect();
        let second_half: Vec<(f64, f64)> =
            window_points.iter().copied().skip(window_points.len() / 2).collect();
        let backlog_slope = slope(&second_half);
        let accepted_per_second = accepted as f64 / secs;
        let per_event = |x: f64| if accepted == 0 { 0.0 } else { x / accepted as f64 };
        let (wr, wp, _) = i.window_costs;
        let (hr, hp, hc) = i.whole_costs;
        let measured = i.args.fault.is_none();
        let per_event = |x: f64| if measured { per_event(x) } else { 0.0 };
        Report {
            fault: i.args.fault.map(|f| format!("{f:?}")),
            mode: match i.args.rate {
                Some(r) => format!("open loop {r}/s"),
                None => format!("closed loop C={}", i.args.concurrency),
            },
            tenants: i.args.tenants,
            destinations_per_tenant: m,
            prefill: i.args.prefill,
            seconds: secs,
            sent: w.g1 - w.g0,
            accepted,
            answered_duplicate: answers[0],
            shed_503_with_retry_after: answers[1],
            shed_503_without_retry_after: answers[2],
            other_status: answers[3],
            no_answer: answers[4],
            accepted_per_second,
            delivered_per_second: delivered as f64 / secs,
            backlog_at_start: window_points.first().map_or(0.0, |p| p.1),
            backlog_at_end: window_points.last().map_or(0.0, |p| p.1),
            backlog_slope_per_second: backlog_slope,
            backlog_grew: backlog_slope > 0.02 * accepted_per_second * m as f64,
            lost,
            duplicate_deliveries: i.arrivals.duplicates.load(std::sync::atomic::Ordering::Relaxed),
            stray_requests: i.arrivals.strays.load(std::sync::atomic::Ordering::Relaxed),
            unacknowledged_delivered: unacked,
            ingest_ms: Percentiles::of(ingest),
            shed_ms: Percentiles::of(shed),
            end_to_end_ms: Percentiles::of(e2e),
            drain_seconds: w.drained.then(|| (w.t_drained - w.t1).as_secs_f64()),
            relay_rss_max_mib: i.rss_max,
            relay_rss_end_mib: i.rss_end,
            relay_cpu_ms_per_event: per_event(wr),
            postgres_cpu_ms_per_event: per_event(wp),
            cpu_ms_per_event: per_event(wr + wp),
            relay_cpu_ms_per_event_with_drain: per_event(hr),
            postgres_cpu_ms_per_event_with_drain: per_event(hp),
            commits_per_event: per_event(hc),
            bench_cpu_ms_per_event: per_event(i.others.0),
            redis_cpu_ms_per_event: per_event(i.others.1),
            statements: i.statements,
        }
    }

    pub fn print(&self) {
        let p = |x: &Percentiles| {
            format!("p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} ms", x.p50, x.p90, x.p99, x.max)
        };
        println!(
            "e2e: {}, {} tenant(s) x {} destination(s), prefill {}, window {:.1} s",
            self.mode, self.tenants, self.destinations_per_tenant, self.prefill, self.seconds
        );
        if let Some(fault) = &self.fault {
            println!("  fault           {fault} half-way through the window (CPU and memory not measured)");
        }
        println!(
            "  accepted        {:>9.0} events/s ({} of {} sent; 503 {} (+{} without Retry-After), other {}, no answer {}, duplicate answers {})",
            self.accepted_per_second,
            self.accepted,
            self.sent,
            self.shed_503_with_retry_after,
            self.shed_503_without_retry_after,
            self.other_status,
            self.no_answer,
            self.answered_duplicate
        );
        println!("  delivered       {:>9.0} deliveries/s in the same window", self.delivered_per_second);
        println!(
            "  backlog         {:.0} -> {:.0}, slope {:+.0}/s over the second half: {}",
            self.backlog_at_start,
            self.backlog_at_end,
            self.backlog_slope_per_second,
            if self.backlog_grew { "GREW" } else { "steady" }
        );
        println!(
            "  lost {}, duplicates {}, strays {}, delivered without a 200 {}",
            self.lost, self.duplicate_deliveries, self.stray_requests, self.unacknowledged_delivered
        );
        println!("  ingest          {}", p(&self.ingest_ms));
        if self.shed_ms.max > 0.0 {
            println!("  shed (503)      {}", p(&self.shed_ms));
        }
        println!("  end to end      {}", p(&self.end_to_end_ms));
        println!(
            "  drain           {}",
            self.drain_seconds.map_or("did not finish".to_owned(), |s| format!("{s:.2} s after the load"))
        );
        println!(
            "  relay RSS       max {:.1} MiB, end {:.1} MiB",
            self.relay_rss_max_mib, self.relay_rss_end_mib
        );
        println!(
            "  CPU per event   relay {:.3} + Postgres {:.3} = {:.3} ms (window); with drain: relay {:.3} + Postgres {:.3} ms",
            self.relay_cpu_ms_per_event,
            self.postgres_cpu_ms_per_event,
            self.cpu_ms_per_event,
            self.relay_cpu_ms_per_event_with_drain,
            self.postgres_cpu_ms_per_event_with_drain
        );
        println!("  commits         {:.3} per event", self.commits_per_event);
        println!(
            "  rest of the box load generator + receiver {:.3} ms, Redis {:.3} ms per event",
            self.bench_cpu_ms_per_event, self.redis_cpu_ms_per_event
        );
        for s in &self.statements {
            println!("    {s}");
        }
    }
}

/// The figures summarised over several runs: median and range.
const SUMMARY: &[(&str, &str)] = &[
    ("accepted_per_second", "accepted events/s"),
    ("delivered_per_second", "delivered deliveries/s"),
    ("backlog_slope_per_second", "backlog slope /s"),
    ("lost", "lost"),
    ("duplicate_deliveries", "duplicates"),
    ("ingest_ms.p99", "ingest p99 ms"),
    ("end_to_end_ms.p50", "end-to-end p50 ms"),
    ("end_to_end_ms.p99", "end-to-end p99 ms"),
    ("drain_seconds", "drain s"),
    ("relay_rss_max_mib", "relay RSS max MiB"),
    ("cpu_ms_per_event", "CPU ms/event (relay+PG)"),
    ("commits_per_event", "commits/event"),
];

pub fn summarise(reports: &[Report]) -> serde_json::Value {
    let values: Vec<serde_json::Value> =
        reports.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
    let mut out = serde_json::Map::new();
    println!("\nsummary of {} runs: median [min .. max]", reports.len());
    for (path, label) in SUMMARY {
        let mut xs: Vec<f64> = values
            .iter()
            .filter_map(|v| path.split('.').try_fold(v, |v, k| v.get(k)).and_then(|x| x.as_f64()))
            .collect();
        if xs.is_empty() {
            continue;
        }
        xs.sort_by(f64::total_cmp);
        let median = xs[xs.len() / 2];
        println!("  {label:<26} {median:>10.3} [{:.3} .. {:.3}]", xs[0], xs[xs.len() - 1]);
        out.insert(
            (*path).to_owned(),
            serde_json::json!({"median": median, "min": xs[0], "max": xs[xs.len() - 1]}),
        );
    }
    serde_json::Value::Object(out)
}
