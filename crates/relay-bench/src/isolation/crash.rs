//! Scenario (h): two `wap-relay` processes with every role on one database and one Redis
//! prefix, the victim's events sent to each in turn at 1,000/s, and one process killed with
//! SIGKILL half-way through the window. Reported: the time from the kill until every delivery of
//! the events acknowledged before it has arrived (the dead process's leases included), and the
//! acknowledged deliveries that never arrived (the target is 0).

use std::time::{Duration, Instant};

use anyhow::Context;

use super::traffic::Figures;
use super::victim::{Schedule, Victim};
use super::{Outcome, Scenario};
use crate::relay::{self, Relay};

/// Without an arrival for this long the drain gives up: past any lease the relay holds.
const STALL: Duration = Duration::from_secs(90);

/// One run of (h) on a fresh database; the database is dropped afterwards.
pub async fn run(binary: &str, schedule: Schedule) -> anyhow::Result<Outcome> {
    let db = relay::fresh_database();
    let result = run_on(binary, &db, schedule).await;
    relay::drop_database(&db).await;
    result
}

async fn run_on(binary: &str, db: &str, schedule: Schedule) -> anyhow::Result<Outcome> {
    let prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
    let epoch = Instant::now();
    let roles = "ingress,admin,dispatcher";
    let doomed = relay::start_relay(binary, db, roles, &prefix).await?;
    let survivor = relay::start_relay(binary, db, roles, &prefix).await?;
    let client = reqwest::Client::new();
    let victim = Victim::start(&client, &survivor.base, &[&doomed.base], schedule, epoch).await?;
    victim.warm_up(schedule).await;
    let start = victim.mark();
    let half = Duration::from_secs(schedule.seconds) / 2;
    let ((), killed) =
        tokio::join!(victim.load.open(schedule.rate, schedule.seconds), kill_after(doomed, half, epoch));
    let killed = killed?;
    let t1 = epoch.elapsed();
    let window = victim.drain(start, t1, STALL).await;
    let (acknowledged, missing, recovered) = victim.arrived_after(killed.as_nanos() as u64);
    drop(survivor);
    let mut aggressor = Figures::new();
    aggressor.insert("events acknowledged before the kill".to_owned(), acknowledged as f64);
    aggressor.insert("their deliveries lost".to_owned(), missing as f64);
    if let Some(s) = recovered {
        aggressor.insert("recovery s".to_owned(), s);
    }
    Ok(Outcome { scenario: Some(Scenario::Sigkill), victim: victim.figures(schedule, window), aggressor })
}

/// Waits `after`, kills `relay` with SIGKILL, and returns the moment of the kill after `epoch`.
async fn kill_after(mut relay: Relay, after: Duration, epoch: Instant) -> anyhow::Result<Duration> {
    tokio::time::sleep(after).await;
    let at = epoch.elapsed();
    relay.child.start_kill().context("SIGKILL")?;
    relay.child.wait().await?;
    Ok(at)
}
