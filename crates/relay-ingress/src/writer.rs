//! Group commit for the ingest path. Requests hand their event to one queue; a collector takes
//! whatever is queued (up to `max_batch`) as soon as a writer slot is free, and a writer stores the
//! batch — events, the fan-out deliveries, the dispatcher wake-up — in one statement, so one
//! transaction and two round trips per batch (the destinations read, then the write). Under
//! light load a batch is one event and nothing waits; under heavy load many requests share one
//! commit (one WAL flush), which is what makes high ingest rates possible.
//!
//! Invariants: a request is answered only after its batch committed, or with the error that
//! prevented it. One bad row must not fail other requests: a batch that fails for a reason other
//! than an unavailable database is retried one event at a time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use relay_core::filter::EventKey;
use relay_core::{DeliveryId, EventId, TenantId};
use relay_store::deliveries::NewDelivery;
use relay_store::events::NewEvent;
use relay_store::{PgPool, Redis, StoreError, destinations, ingest};
use tokio::sync::{Semaphore, mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Transactions in flight at once.
    pub writers: usize,
    /// Most events in one transaction.
    pub max_batch: usize,
    /// Requests waiting for a writer before new ones wait to enqueue.
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self { writers: 4, max_batch: 256, queue: 8_192 }
    }
}

/// What happened to one submitted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, with this many deliveries.
    New { deliveries: usize },
    /// This source already had this eventId.
    Duplicate,
}

struct Job {
    event: NewEvent,
    dedupe_ttl: Duration,
    reply: oneshot::Sender<Result<Stored, Arc<StoreError>>>,
}

/// Handle to the group-commit writer; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(pool: PgPool, redis: Redis, config: WriterConfig) -> Self {
        let (queue, jobs) = mpsc::channel(config.queue);
        tokio::spawn(collect(jobs, Arc::new(Deps { pool, redis }), config));
        Self { queue }
    }

    /// Stores one event (unless it is a duplicate) and its deliveries; returns after the commit.
    /// `dedupe_ttl` is how long the Redis fast path remembers it (the tenant's retention).
    pub async fn store(&self, event: NewEvent, dedupe_ttl: Duration) -> Result<Stored, Arc<StoreError>> {
        let (reply, answer) = oneshot::channel();
        let job = Job { event, dedupe_ttl, reply };
        if self.queue.send(job).await.is_err() {
            return Err(Arc::new(StoreError::Corrupt("the ingest writer has stopped".into())));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Arc::new(StoreError::Corrupt("the ingest writer dropped a request".into())))
        })
    }
}

struct Deps {
    pool: PgPool,
    redis: Redis,
}

async fn collect(mut jobs: mpsc::Receiver<Job>, deps: Arc<Deps>, config: WriterConfig) {
    let slots = Arc::new(Semaphore::new(config.writers.max(1)));
    loop {
        // Wait for a free writer first: while all are busy, requests pile up into the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = jobs.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < config.max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let deps = deps.clone();
        tokio::spawn(async move {
            write(&deps, batch).await;
            drop(slot);
        });
    }
}

async fn write(deps: &Deps, batch: Vec<Job>) {
    metrics::histogram!("relay_ingest_batch_size").record(batch.len() as f64);
    let events: Vec<NewEvent> = batch.iter().map(|j| j.event.clone()).collect();
    match guarded(&deps.pool, &events).await {
        Ok(outcomes) => finish(deps, batch, outcomes).await,
        Err(e) if e.is_unavailable() || batch.len() == 1 => {
            let e = Arc::new(e);
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, batch.size = batch.len(), "ingest batch failed; storing its events one by one");
            for job in batch {
                let result = guarded(&deps.pool, std::slice::from_ref(&job.event)).await;
                match result {
                    Ok(outcomes) => finish(deps, vec![job], outcomes).await,
                    Err(e) => {
                        let _ = job.reply.send(Err(Arc::new(e)));
                    }
                }
            }
        }
    }
}

/// Answers the requests, then remembers the stored eventIds for the Redis dedupe fast path.
async fn finish(deps: &Deps, batch: Vec<Job>, outcomes: Vec<Stored>) {
    let mut remember = Vec::with_capacity(batch.len());
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        remember.push((job.event.source_id, job.event.wap_event_id.clone(), job.dedupe_ttl));
        let _ = job.reply.send(Ok(outcome));
    }
    let keys: Vec<_> = remember.iter().map(|(s, id, ttl)| (*s, id.as_str(), *ttl)).collect();
    deps.redis.remember_events(&keys).await;
}

/// [`store_batch`], with a panic turned into an error: whatever goes wrong with one event, the
/// batch falls back to storing its events one by one, so the others are still answered.
async fn guarded(pool: &PgPool, events: &[NewEvent]) -> Result<Vec<Stored>, StoreError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(store_batch(pool, events))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(StoreError::Corrupt("storing an ingest batch panicked".into())))
}

/// Reads the enabled destinations of the batch's tenants, matches every event against their
/// filters, then stores the events and the deliveries of the new ones in one statement (one
/// transaction). Fan-out uses the destinations as read at the start of the batch's write: one
/// created a moment later gets the next events, and one deleted a moment earlier has its
/// deliveries failed by the dispatcher. Returns one outcome per input event.
async fn store_batch(pool: &PgPool, events: &[NewEvent]) -> Result<Vec<Stored>, StoreError> {
    let tenants: Vec<uuid::Uuid> =
        events.iter().map(|e| e.tenant_id.uuid()).collect::<HashSet<_>>().into_iter().collect();
    let fanout = destinations::list_fanout_destinations(pool, &tenants).await?;
    let mut by_tenant: HashMap<TenantId, Vec<&destinations::FanoutDestination>> = HashMap::new();
    for d in &fanout {
        by_tenant.entry(d.tenant_id).or_default().push(d);
    }
    let mut candidates = Vec::new();
    let mut per_event = Vec::with_capacity(events.len());
    for event in events {
        let key = EventKey {
            source_id: event.source_id,
            event_type: &event.event_type,
            device_id: event.device_id.as_deref(),
        };
        let before = candidates.len();
        for d in by_tenant.get(&event.tenant_id).into_iter().flatten() {
            if d.filter.matches(&key) {
                candidates.push(NewDelivery {
                    id: DeliveryId::new(),
                    tenant_id: event.tenant_id,
                    event_id: event.id,
                    destination_id: d.id,
                });
            }
        }
        per_event.push(candidates.len() - before);
    }
    let inserted: HashSet<EventId> =
        ingest::store_events(pool, events, &candidates).await?.into_iter().collect();
    Ok(events
        .iter()
        .zip(per_event)
        .map(
            |(e, deliveries)| {
                if inserted.contains(&e.id) { Stored::New { deliveries } } else { Stored::Duplicate }
            },
        )
        .collect())
}
