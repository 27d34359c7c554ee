//! `relay-bench`: measures a real `wap-relay` release binary on this machine. Each run starts the
//! binary on a fresh database, sets tenants up through the admin API, drives load over loopback
//! and prints figures; the load generator, the receiver and Postgres/Redis share the box with the
//! relay, so figures are for this machine as a whole (see docs/benchmarks.md).
//!
//! - `e2e`: the real workload, ingest and delivery at once (closed or open loop, N tenants × M
//!   destinations, optional prefilled backlog); the figures of the performance targets.
//! - `ingest`: events/s accepted with the dispatcher role off (the ingest path alone).
//! - `saturate`: a queue filled first, then drained by a dispatcher-only process.
//! - `isolation`: a victim tenant alone, then beside each noisy-neighbour scenario (CONTRACT §10).
//! - `purge`: one retention sweep over millions of old rows, by partition drop or by deletes,
//!   while ingest runs.

mod classic;
mod e2e;
mod faults;
mod isolation;
mod prefill;
mod probe;
mod purge;
mod receiver;
mod relay;
mod report;
mod signed;

use clap::{Parser, Subcommand};

/// The load generator shares the machine with the relay: it should cost as little as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Ingest and delivery at once, as users run the relay.
    E2e {
        #[command(flatten)]
        args: e2e::E2eArgs,
        /// Runs, each on a fresh database; more than one prints the median and range.
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Also write the reports (and the summary) as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// The ingest path alone: events/s accepted with the dispatcher role off.
    Ingest {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 2)]
        destinations: usize,
    },
    /// A queue filled first, then drained by a dispatcher-only process.
    Saturate {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 2)]
        destinations: usize,
    },
    /// A victim tenant alone, then beside each aggressor scenario of CONTRACT §10.
    Isolation {
        #[command(flatten)]
        args: isolation::IsolationArgs,
    },
    /// One retention sweep over `rows` old history rows while events are posted at `rate`/s.
    Purge {
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        #[arg(long, value_enum, default_value_t = purge::Mode::Drop)]
        mode: purge::Mode,
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::E2e { mut args, runs, json } => {
            if args.smoke {
                args.seconds = args.seconds.min(3);
                args.warmup = args.warmup.min(1);
                args.concurrency = args.concurrency.min(16);
                args.stall_seconds = args.stall_seconds.min(20);
            }
            let mut reports = Vec::new();
            for run in 0..runs.max(1) {
                if runs > 1 {
                    println!("\nrun {} of {runs}", run + 1);
                }
                let report = e2e::run(&cli.binary, &args).await?;
                report.print();
                reports.push(report);
            }
            let summary = (reports.len() > 1).then(|| report::summarise(&reports));
            if let Some(path) = json {
                let out = serde_json::json!({"runs": reports, "summary": summary});
                std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
            }
            if args.smoke {
                let r = &reports[0];
                anyhow::ensure!(r.accepted > 0, "smoke: no event was accepted");
                anyhow::ensure!(r.lost == 0, "smoke: {} acknowledged deliveries never arrived", r.lost);
                anyhow::ensure!(
                    r.duplicate_deliveries == 0,
                    "smoke: {} duplicate deliveries",
                    r.duplicate_deliveries
                );
                println!("smoke: 0 lost, 0 duplicates");
            }
            Ok(())
        }
        Command::Ingest { concurrency, events, destinations } => {
            classic::ingest(&cli.binary, concurrency, events, destinations).await
        }
        Command::Saturate { events, destinations } => {
            classic::saturate(&cli.binary, events, destinations).await
        }
        Command::Isolation { args } => isolation::run(&cli.binary, args).await,
        Command::Purge { rows, mode, rate } => purge::run(&cli.binary, rows, mode, rate).await,
    }
}
