//! Batched recording of attempts: finished attempts queue here and are written in batches of up
//! to `batch` records, one statement per batch (`relay_store::outcomes::record_attempts`), so
//! recording costs a round trip per batch instead of per attempt.
//!
//! Invariant: a batch is retried while Postgres is unavailable, for at most `give_up_after`
//! (past that the rows' leases have ended and the attempts will be made again: at least once).
//! The task ends when every sender is dropped and the queue is written.

use std::time::{Duration, Instant};

use relay_store::PgPool;
use relay_store::outcomes::{AttemptRecord, record_attempts};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub(crate) type RecordSender = mpsc::UnboundedSender<AttemptRecord>;

pub(crate) struct RecorderConfig {
    pub batch: usize,
    pub unhealthy_after: Duration,
    pub give_up_after: Duration,
}

pub(crate) fn start(pool: PgPool, config: RecorderConfig) -> (RecordSender, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(run(pool, config, rx)))
}

async fn run(pool: PgPool, config: RecorderConfig, mut rx: mpsc::UnboundedReceiver<AttemptRecord>) {
    let mut batch = Vec::with_capacity(config.batch);
    while rx.recv_many(&mut batch, config.batch).await > 0 {
        write(&pool, &config, &batch).await;
        batch.clear();
    }
}

async fn write(pool: &PgPool, config: &RecorderConfig, batch: &[AttemptRecord]) {
    let first_try = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match record_attempts(pool, batch, config.unhealthy_after).await {
            Ok(recorded) => {
                for r in batch {
                    metrics::counter!("relay_delivery_attempts_total", "outcome" => r.outcome.as_str())
                        .increment(1);
                }
                let lost = batch.len() as u64 - recorded.applied;
                if lost > 0 {
                    tracing::info!(count = lost, "attempt outcomes arrived after their lease passed on");
                }
                for (id, reason) in &recorded.disabled {
                    tracing::warn!(destination.id = %id, reason = %reason, "destination disabled");
                }
                return;
            }
            Err(e) if first_try.elapsed() < config.give_up_after => {
                tracing::warn!(error = %e, count = batch.len(), "recording attempts failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    count = batch.len(),
                    "attempt outcomes dropped; the deliveries will be attempted again when their lease ends"
                );
                return;
            }
        }
    }
}
