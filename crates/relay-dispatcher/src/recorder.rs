//! Batched recording of attempts: finished attempts queue here and are written in batches of up
//! to `batch` records, one statement per batch (`relay_store::outcomes::record_attempts`), by
//! [`WRITERS`] writers at once, so recording costs a round trip per batch instead of per attempt
//! and keeps up with bursts and a slow database. A writer waits up to [`GATHER`] for a batch to
//! fill: nobody waits for a record (the attempt is over), so a few milliseconds buy large batches
//! and few commits.
//!
//! The queue is bounded, and its backlog (records queued or being written) is what the dispatch
//! round asks [`Recorder::room`] about before claiming: while recording is behind, no more rows
//! are claimed, so a record waits behind at most about `WRITERS` batches plus the attempts in
//! flight, and its lease (which allows for that wait, see `round::lease_for`) is still held when
//! it is written. A full queue also makes a finishing attempt wait, holding its slot.
//!
//! Invariants: an outcome is applied only by the lease holder (checked by the statement, so
//! concurrent batches are safe); a batch is retried while Postgres is unavailable, for at most
//! `give_up_after` (past that the rows' leases have ended and the attempts will be made again: at
//! least once); a batch refused for another reason is written one record at a time, so one bad
//! record costs only its own outcome. The writers end when the recorder is closed and the queue
//! is written.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use relay_store::PgPool;
use relay_store::outcomes::{AttemptRecord, record_attempts};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinHandle;

/// Batches written at once. Each holds a pool connection while it writes.
pub(crate) const WRITERS: usize = 2;
/// How long a writer waits for its batch to fill once it has a first record.
const GATHER: Duration = Duration::from_millis(5);

pub(crate) struct RecorderConfig {
    pub batch: usize,
    pub unhealthy_after: Duration,
    pub give_up_after: Duration,
}

/// The sending side, shared by every attempt task.
pub(crate) struct Recorder {
    /// `None` once closed: the writers end when the queue is written.
    tx: std::sync::Mutex<Option<mpsc::Sender<AttemptRecord>>>,
    backlog: Arc<AtomicUsize>,
    limit: usize,
    /// Signalled whenever a batch is written and the backlog shrinks.
    pub drained: Arc<Notify>,
}

impl Recorder {
    /// Queues a record; waits while the queue is full. `Err` only when the writers are gone.
    pub async fn send(&self, record: AttemptRecord) -> Result<(), AttemptRecord> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else { return Err(record) };
        self.backlog.fetch_add(1, Ordering::AcqRel);
        tx.send(record).await.map_err(|e| {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            e.0
        })
    }

    /// No more records: the writers end once what is queued is written.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Records queued or being written.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Acquire)
    }

    /// How many more records may be produced before recording counts as behind.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.backlog())
    }
}

/// Starts the writers; the handle ends when they all have.
pub(crate) fn start(pool: PgPool, config: RecorderConfig) -> (Recorder, JoinHandle<()>) {
    let config = Arc::new(config);
    // `WRITERS` batches may be queued beyond the ones being written; past that the round stops
    // claiming. The channel holds that plus slack for the attempts finishing meanwhile.
    let limit = WRITERS * config.batch;
    let (tx, rx) = mpsc::channel(2 * limit);
    let rx = Arc::new(Mutex::new(rx));
    let backlog = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Notify::new());
    let writers: Vec<JoinHandle<()>> = (0..WRITERS)
        .map(|_| {
            let writer = Writer {
                pool: pool.clone(),
                config: config.clone(),
                rx: rx.clone(),
                backlog: backlog.clone(),
                drained: drained.clone(),
            };
            tokio::spawn(writer.run())
        })
        .collect();
    let handle = tokio::spawn(async move {
        for w in writers {
            let _ = w.await;
        }
    });
    (Recorder { tx: std::sync::Mutex::new(Some(tx)), backlog, limit, drained }, handle)
}

struct Writer {
    pool: PgPool,
    config: Arc<RecorderConfig>,
    rx: Arc<Mutex<mpsc::Receiver<AttemptRecord>>>,
    backlog: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl Writer {
    async fn run(self) {
        let mut batch = Vec::with_capacity(self.config.batch);
        loop {
            // One writer at a time takes a batch; the others write theirs meanwhile.
            let got = {
                let mut rx = self.rx.lock().await;
                let mut got = rx.recv_many(&mut batch, self.config.batch).await;
                let until = tokio::time::Instant::now() + GATHER;
                while got > 0 && got < self.config.batch {
                    let more =
                        tokio::time::timeout_at(until, rx.recv_many(&mut batch, self.config.batch - got));
                    match more.await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                got
            };
            if got == 0 {
                return;
            }
            write(&self.pool, &self.config, &batch).await;
            batch.clear();
            self.backlog.fetch_sub(got, Ordering::AcqRel);
            self.drained.notify_one();
        }
    }
}

/// Writes one batch: retried while Postgres is unavailable (up to `give_up_after`); a batch that
/// Postgres refuses for another reason (one bad record) is written again one record at a time, so
/// one bad record never costs the others their outcomes.
async fn write(pool: &PgPool, config: &RecorderConfig, batch: &[AttemptRecord]) {
    match write_retrying(pool, config, batch).await {
        Err(e) if batch.len() > 1 && !e.is_unavailable() => {
            tracing::warn!(error = %e, count = batch.len(), "recording a batch failed; recording its attempts one by one");
            for record in batch {
                if let Err(e) = write_retrying(pool, config, std::slice::from_ref(record)).await {
                    dropped(&e, 1);
                }
            }
        }
        Err(e) => dropped(&e, batch.len()),
        Ok(()) => {}
    }
}

fn dropped(e: &relay_store::StoreError, count: usize) {
    tracing::error!(
        error = %e,
        count,
        "attempt outcomes dropped; the deliveries will be attempted again when their lease ends"
    );
}

async fn write_retrying(
    pool: &PgPool,
    config: &RecorderConfig,
    batch: &[AttemptRecord],
) -> Result<(), relay_store::StoreError> {
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
                return Ok(());
            }
            Err(e) if e.is_unavailable() && first_try.elapsed() < config.give_up_after => {
                tracing::warn!(error = %e, count = batch.len(), "recording attempts failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::{AttemptId, DeliveryId, DestinationId, TenantId};
    use relay_store::dispatch::Trigger;
    use relay_store::outcomes::{AttemptOutcome, NextState};

    fn record(tenant: TenantId, body: &str) -> AttemptRecord {
        AttemptRecord {
            id: AttemptId::new(),
            delivery_id: DeliveryId::new(),
            tenant_id: tenant,
            destination_id: DestinationId::new(),
            lease_token: uuid::Uuid::now_v7(),
            number: 1,
            trigger: Trigger::Auto,
            started_at: time::OffsetDateTime::now_utc(),
            duration_ms: 1,
            url: "https://example.com/".into(),
            outcome: AttemptOutcome::Success,
            status_code: Some(200),
            response_headers: None,
            response_body: Some(body.into()),
            error: None,
            next: NextState::Succeeded,
            gone: false,
            known_failing_since: Some(None),
        }
    }

    #[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
    async fn one_bad_record_costs_only_its_own_outcome(pool: PgPool) {
        let config = RecorderConfig {
            batch: 10,
            unhealthy_after: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(5),
        };
        let (recorder, writers) = start(pool.clone(), config);
        let tenant = TenantId::new();
        // Postgres text cannot hold NUL: that record makes the batch statement fail.
        for body in ["ok", "bad\0", "ok too"] {
            assert!(recorder.send(record(tenant, body)).await.is_ok());
        }
        recorder.close();
        writers.await.unwrap();
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT response_body FROM attempts ORDER BY response_body")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(bodies, ["ok", "ok too"]);
    }
}
