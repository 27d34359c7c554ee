//! `relay-bench isolation`: the noisy-neighbour benchmark of CONTRACT §10 (issue 19). A victim
//! tenant with a steady open-loop load runs alone, then beside each aggressor scenario in turn,
//! each run on its own fresh database and relay process (so one scenario's leftovers cannot
//! taint the next); the table compares the victim's ingest and end-to-end p99 beside each
//! aggressor with the alone run of the same round, and counts the victim's 429 and 503 answers.
//!
//! The alone run is repeated once per round (`--runs`), before that round's scenarios: each
//! ratio compares runs minutes apart at most, and the alone figures carry the same spread as the
//! others. Everything is on loopback, bounded in time and count, and stops by itself.

mod aggressor;
mod crash;
mod sink;
mod table;
mod traffic;
mod victim;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::relay;
pub use aggressor::Scenario;
use traffic::Figures;
use victim::{Schedule, Victim, VictimFigures};

#[derive(Debug, Clone, clap::Args)]
pub struct IsolationArgs {
    /// Scenarios beside the victim, in order (a–h, comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// The victim's open-loop rate, events/s.
    #[arg(long, default_value_t = 300)]
    pub rate: u64,
    /// The measured window, seconds.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// The victim's warm-up before the window (the aggressor already runs), seconds.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// The victim's rate in (h), events/s.
    #[arg(long, default_value_t = 1_000)]
    pub crash_rate: u64,
    /// Rounds (alone, then every scenario); more than one gives the median and range per cell.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also write every run and the table as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// A few seconds, scenarios (a) and (d) with small setups, nothing lost (for CI).
    #[arg(long)]
    pub smoke: bool,
}

/// The victim's figures in one run, and what the aggressor (if any) achieved.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: Option<Scenario>,
    pub victim: VictimFigures,
    pub aggressor: Figures,
}

/// One round: the alone run, then each scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub alone: Outcome,
    pub beside: Vec<Outcome>,
}

/// Runs every round and prints the table.
pub async fn run(binary: &str, mut args: IsolationArgs) -> anyhow::Result<()> {
    if args.smoke {
        args.seconds = args.seconds.min(3);
        args.warmup = args.warmup.min(1);
        if args.scenarios.is_empty() {
            args.scenarios = vec![Scenario::HeldDevice, Scenario::AdminReads];
        }
    }
    if args.scenarios.is_empty() {
        args.scenarios = <Scenario as clap::ValueEnum>::value_variants().to_vec();
    }
    let mut rounds = Vec::new();
    for run in 0..args.runs.max(1) {
        println!("round {} of {}", run + 1, args.runs.max(1));
        let alone = run_one(binary, &args, None).await?;
        print_outcome(&alone);
        let mut beside = Vec::new();
        for &s in &args.scenarios {
            let outcome = match s {
                Scenario::Sigkill => crash::run(binary, schedule(&args, args.crash_rate)).await?,
                _ => run_one(binary, &args, Some(s)).await?,
            };
            print_outcome(&outcome);
            beside.push(outcome);
        }
        rounds.push(Round { alone, beside });
    }
    let summary = table::print(&rounds, &args.scenarios);
    if let Some(path) = &args.json {
        let out = serde_json::json!({"rounds": rounds, "summary": summary});
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
    }
    if args.smoke {
        smoke_check(&rounds)?;
    }
    Ok(())
}

fn schedule(args: &IsolationArgs, rate: u64) -> Schedule {
    Schedule { rate, warmup: args.warmup, seconds: args.seconds }
}

fn print_outcome(o: &Outcome) {
    let v = &o.victim;
    println!(
        "  {:<28} victim: {} of {} accepted, ingest p50 {:.1} / p99 {:.1} ms, e2e p99 {:.1} ms, 429 {}, 503 {}, other {}, lost {}, drain {}",
        o.scenario.map_or("alone", Scenario::label),
        v.accepted,
        v.sent,
        v.ingest_p50_ms,
        v.ingest_p99_ms,
        v.end_to_end_p99_ms,
        v.refused_429,
        v.unavailable_503,
        v.other,
        v.lost,
        v.drain_seconds.map_or("did not finish".to_owned(), |s| format!("{s:.1} s")),
    );
}

/// The smoke mode's checks: the victim's events were accepted and none of its acknowledged
/// deliveries was lost, alone or beside any aggressor (speed is not checked: CI machines vary).
fn smoke_check(rounds: &[Round]) -> anyhow::Result<()> {
    for o in rounds.iter().flat_map(|r| std::iter::once(&r.alone).chain(&r.beside)) {
        let name = o.scenario.map_or("alone", Scenario::label);
        anyhow::ensure!(o.victim.accepted > 0, "smoke: {name}: no victim event was accepted");
        anyhow::ensure!(
            o.victim.lost == 0,
            "smoke: {name}: {} acknowledged deliveries never arrived",
            o.victim.lost
        );
    }
    println!("smoke: the victim was served in every run, 0 lost");
    Ok(())
}

/// One run of the victim, beside `scenario`'s aggressor if any, on a fresh database.
async fn run_one(binary: &str, args: &IsolationArgs, scenario: Option<Scenario>) -> anyhow::Result<Outcome> {
    let db = relay::fresh_database();
    let result = run_on(binary, &db, args, scenario).await;
    relay::drop_database(&db).await;
    result
}

async fn run_on(
    binary: &str,
    db: &str,
    args: &IsolationArgs,
    scenario: Option<Scenario>,
) -> anyhow::Result<Outcome> {
    let prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
    let epoch = Instant::now();
    let schedule = schedule(args, args.rate);
    let relay = relay::start_relay(binary, db, "ingress,admin,dispatcher", &prefix).await?;
    let client = reqwest::Client::new();
    let victim = Victim::start(&client, &relay.base, &[], schedule, epoch).await?;
    let aggressor = match scenario {
        Some(s) => {
            let (hits, sink) = sink::start().await?;
            let env = aggressor::Env {
                client: reqwest::Client::new(),
                base: &relay.base,
                db,
                sink: &sink,
                hits,
                smoke: args.smoke,
            };
            Some(aggressor::start(s, &env).await?)
        }
        None => None,
    };
    victim.warm_up(schedule).await;
    let start = victim.mark();
    victim.load.open(schedule.rate, schedule.seconds).await;
    let t1 = epoch.elapsed();
    let aggressor = match aggressor {
        Some(a) => a.finish().await,
        None => Figures::new(),
    };
    let window = victim.drain(start, t1, Duration::from_secs(30)).await;
    drop(relay);
    Ok(Outcome { scenario, victim: victim.figures(schedule, window), aggressor })
}
