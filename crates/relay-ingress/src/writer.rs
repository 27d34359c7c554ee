//! Group commit for the ingest path. Requests hand their event to one queue; as soon as a writer
//! slot is free a batch is taken (whatever is queued, up to a count and a size) and stored —
//! events, the fan-out deliveries, the dispatcher wake-up — in one statement, so one transaction
//! and one round trip per batch (the fan-out destinations come from the process's cache). Under
//! light load a batch is one event and nothing waits; under heavy load many requests share one
//! commit (one WAL flush), which is what makes high ingest rates possible.
//!
//! The queue is bounded by count, by bytes and by the age of each tenant's oldest job, and shared
//! fairly between tenants ([`fair`]): past a bound a new request of the tenant over its share is
//! refused at once ([`Refused::Overloaded`], answered 503 with `Retry-After`), so an overload
//! costs WAPing a fast retry instead of every request a growing wait, and one tenant's flood
//! costs the others nothing. The request's own task decides what needs the event's body
//! (whether it has a Meta equivalent) before queueing it: the shared writer only matches and
//! stores.
//!
//! With a local dispatcher ([`Handoff`]), the deliveries it takes are queued already leased to it
//! and handed over after the commit, with the event in memory. Deliveries held by per-device
//! ordering (a device key) are never offered to it: they are queued due now, and only a claim,
//! which checks that they head their device, starts them.
//!
//! Invariants: a request is answered only after its batch committed, or with the error that
//! prevented it. One bad row must not fail other requests: a batch that fails for a reason other
//! than an unavailable database is retried one event at a time. Every reservation made with the
//! hand-off is handed over or cancelled, whatever happens to the batch (even a panic).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_core::{DeliveryId, DestinationId, EventId, TenantId};
use relay_store::deliveries::NewDelivery;
use relay_store::events::NewEvent;
use relay_store::handoff::{Fresh, Handoff};
use relay_store::{PgPool, Redis, StoreError, ingest};
use tokio::sync::{Notify, Semaphore, oneshot};
use uuid::Uuid;

use crate::source_cache::ConfigCache;
use crate::streamed::Streamed;

mod fair;
use fair::{Bounds, FairQueue, Queued};

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Transactions in flight at once.
    pub writers: usize,
    /// Most events in one transaction.
    pub max_batch: usize,
    /// Most bytes of event bodies in one transaction.
    pub max_batch_bytes: usize,
    /// Most requests waiting for a writer, by count and by body bytes (a tenant below its equal
    /// share may pass these, up to twice; see [`fair`]).
    pub queue: usize,
    pub queue_bytes: usize,
    /// A tenant's request is refused while its oldest waiting one has waited this long.
    pub max_wait: Duration,
    /// Most bytes of one tenant's bodies in one transaction, beyond its first event.
    pub tenant_batch_bytes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            writers: 2,
            max_batch: 512,
            max_batch_bytes: 8 << 20,
            queue: 4_096,
            queue_bytes: 64 << 20,
            max_wait: Duration::from_millis(75),
            tenant_batch_bytes: 1 << 20,
        }
    }
}

/// What happened to one submitted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, with this many deliveries, by this transaction.
    New { deliveries: usize, xact: Option<i64> },
    /// This source already had this eventId.
    Duplicate,
}

/// Why an event was not stored.
#[derive(Debug, Clone)]
pub enum Refused {
    /// The write queue is full: nothing was stored; retry shortly.
    Overloaded,
    Store(Arc<StoreError>),
}

struct Job {
    event: NewEvent,
    /// Whether the event has a Meta Cloud API equivalent (decided by the request, see
    /// [`Writer::store`]).
    meta_equivalent: bool,
    dedupe_ttl: Duration,
    queued_at: Instant,
    reply: oneshot::Sender<Result<Stored, Arc<StoreError>>>,
}

impl Queued for Job {
    fn tenant(&self) -> TenantId {
        self.event.tenant_id
    }
    fn bytes(&self) -> usize {
        self.event.body.len()
    }
    fn queued_at(&self) -> Instant {
        self.queued_at
    }
}

struct Shared {
    queue: Mutex<FairQueue<Job>>,
    ready: Notify,
    bounds: Bounds,
    config: WriterConfig,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, FairQueue<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to the group-commit writer; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

impl Writer {
    pub fn start(
        pool: PgPool,
        redis: Redis,
        config: WriterConfig,
        cache: Arc<ConfigCache>,
        handoff: Option<Arc<dyn Handoff>>,
    ) -> Self {
        let bounds = Bounds {
            queue: config.queue,
            queue_bytes: config.queue_bytes,
            max_wait: config.max_wait,
            max_batch: config.max_batch.max(1),
            max_batch_bytes: config.max_batch_bytes,
            tenant_batch_bytes: config.tenant_batch_bytes,
        };
        let shared = Arc::new(Shared { queue: Mutex::default(), ready: Notify::new(), bounds, config });
        let streamed = Streamed::start(redis.clone(), &pool);
        let deps = Arc::new(Deps { pool, redis, cache, handoff, streamed, coverage: Default::default() });
        tokio::spawn(collect(shared.clone(), deps));
        Self { shared }
    }

    /// Stores one event (unless it is a duplicate) and its deliveries; returns after the commit.
    /// `dedupe_ttl` is how long the Redis fast path remembers it (the tenant's retention);
    /// `meta_equivalent` whether it goes to the tenant's `meta_cloud_api` destinations (the
    /// request's task maps the body once, so the shared writer never does).
    pub async fn store(
        &self,
        event: NewEvent,
        dedupe_ttl: Duration,
        meta_equivalent: bool,
    ) -> Result<Stored, Refused> {
        let (reply, answer) = oneshot::channel();
        let job = Job { event, meta_equivalent, dedupe_ttl, queued_at: Instant::now(), reply };
        if self.shared.lock().push(job, &self.shared.bounds).is_err() {
            return Err(Refused::Overloaded);
        }
        self.shared.ready.notify_one();
        match answer.await {
            Ok(result) => result.map_err(Refused::Store),
            Err(_) => Err(Refused::Store(Arc::new(StoreError::Corrupt(
                "the ingest writer dropped a request".into(),
            )))),
        }
    }
}

struct Deps {
    pool: PgPool,
    redis: Redis,
    cache: Arc<ConfigCache>,
    handoff: Option<Arc<dyn Handoff>>,
    streamed: Arc<Streamed>,
    /// The history partitions this process knows to exist.
    coverage: relay_store::partitions::Coverage,
}

async fn collect(shared: Arc<Shared>, deps: Arc<Deps>) {
    let slots = Arc::new(Semaphore::new(shared.config.writers.max(1)));
    loop {
        // Wait for a free writer first: while all are busy, requests pile up into the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let batch = loop {
            let batch = shared.lock().take_batch(&shared.bounds);
            if !batch.is_empty() {
                break batch;
            }
            shared.ready.notified().await;
        };
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
    let metas: Vec<bool> = batch.iter().map(|j| j.meta_equivalent).collect();
    match guarded(deps, &events, &metas).await {
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
                let result = guarded(deps, std::slice::from_ref(&job.event), &[job.meta_equivalent]).await;
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
    let new = batch.iter().zip(&outcomes).filter(|(_, o)| matches!(o, Stored::New { .. }));
    let streamed = deps.streamed.pick(new.map(|(job, _)| job.event.tenant_id.uuid()));
    if !streamed.is_empty() {
        // After the commit: a stream that hears it reads the events from the store.
        let pool = deps.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = relay_store::stream::notify(&pool, &streamed).await {
                tracing::debug!(error = %e, "could not notify the event streams; they poll");
            }
        });
    }
    let mut remember = Vec::with_capacity(batch.len());
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        remember.push((job.event.source_id, job.event.dedupe_identity().to_owned(), job.dedupe_ttl));
        let _ = job.reply.send(Ok(outcome));
    }
    let keys: Vec<_> = remember.iter().map(|(s, id, ttl)| (*s, id.as_str(), *ttl)).collect();
    deps.redis.remember_events(&keys).await;
}

/// [`store_batch`], with a panic turned into an error: whatever goes wrong with one event, the
/// batch falls back to storing its events one by one, so the others are still answered.
async fn guarded(deps: &Deps, events: &[NewEvent], metas: &[bool]) -> Result<Vec<Stored>, StoreError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(store_batch(deps, events, metas))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(StoreError::Corrupt("storing an ingest batch panicked".into())))
}

/// Reservations made with the hand-off; whatever is not handed over is cancelled on drop.
struct Reservations {
    handoff: Option<Arc<dyn Handoff>>,
    held: Vec<(TenantId, DestinationId)>,
}

impl Drop for Reservations {
    fn drop(&mut self) {
        if let Some(h) = &self.handoff
            && !self.held.is_empty()
        {
            h.cancel(&self.held);
        }
    }
}

/// One candidate delivery and what the hand-off needs of its destination.
struct Candidate {
    delivery: NewDelivery,
    max_in_flight: u32,
    timeout_ms: u32,
}

/// Matches every event against its tenant's fan-out destinations (as cached: one created a
/// moment ago gets the next events, and one deleted a moment ago has its deliveries failed by the
/// dispatcher), reserving first attempts with the hand-off, then stores the events and the
/// deliveries of the new ones in one statement (one transaction), then hands the reserved
/// deliveries of new events over. Returns one outcome per input event.
///
/// A `meta_cloud_api` destination gets only the events that map to Meta's webhook (`metas`, one
/// per event, as the requests found).
async fn store_batch(deps: &Deps, events: &[NewEvent], metas: &[bool]) -> Result<Vec<Stored>, StoreError> {
    let tenants: Vec<TenantId> =
        events.iter().map(|e| e.tenant_id).collect::<HashSet<_>>().into_iter().collect();
    deps.coverage.ensure(&deps.pool, events.iter().map(|e| e.keep_days)).await?;
    let fanout = deps.cache.fanout(&deps.pool, &tenants).await?;
    let mut reservations = Reservations { handoff: deps.handoff.clone(), held: Vec::new() };
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut per_event = Vec::with_capacity(events.len());
    for (event, &meta_equivalent) in events.iter().zip(metas) {
        let key = event.key();
        let before = candidates.len();
        for d in fanout.get(&event.tenant_id).into_iter().flat_map(|v| v.iter()) {
            if !d.filter.matches(&key) || (d.meta.is_some() && !meta_equivalent) {
                continue;
            }
            let device_key = d.ordering.device_key(event.device_id.as_deref()).map(str::to_owned);
            // An ordered delivery waits for its device's head: only a claim may start it, so it is
            // never leased to the lane here.
            let lease_ms = match (&deps.handoff, &device_key) {
                (Some(h), None) => h.reserve(event.tenant_id, d),
                _ => None,
            };
            if lease_ms.is_some() {
                reservations.held.push((event.tenant_id, d.id));
            }
            let delivery = NewDelivery {
                id: DeliveryId::new(),
                tenant_id: event.tenant_id,
                event_id: event.id,
                destination_id: d.id,
                lease_ms,
                device_key,
            };
            candidates.push(Candidate { delivery, max_in_flight: d.max_in_flight, timeout_ms: d.timeout_ms });
        }
        per_event.push(candidates.len() - before);
    }
    let token = deps.handoff.as_ref().map_or(Uuid::nil(), |h| h.lease_token());
    let deliveries: Vec<NewDelivery> = candidates.iter().map(|c| c.delivery.clone()).collect();
    let (inserted, xact) = ingest::store_events_in_xact(&deps.pool, events, &deliveries, token).await?;
    let inserted: HashSet<EventId> = inserted.into_iter().collect();
    hand_over(deps, events, &candidates, &inserted, &mut reservations);
    Ok(events
        .iter()
        .zip(per_event)
        .map(
            |(e, deliveries)| {
                if inserted.contains(&e.id) { Stored::New { deliveries, xact } } else { Stored::Duplicate }
            },
        )
        .collect())
}

/// Hands the reserved deliveries of the stored events over; the rest are cancelled by
/// `reservations` when it is dropped.
fn hand_over(
    deps: &Deps,
    events: &[NewEvent],
    candidates: &[Candidate],
    inserted: &HashSet<EventId>,
    reservations: &mut Reservations,
) {
    let Some(handoff) = &deps.handoff else { return };
    let by_id: HashMap<EventId, &NewEvent> = events.iter().map(|e| (e.id, e)).collect();
    let mut fresh = Vec::new();
    let mut dropped = Vec::new();
    for c in candidates.iter().filter(|c| c.delivery.lease_ms.is_some()) {
        let d = &c.delivery;
        match by_id.get(&d.event_id) {
            Some(e) if inserted.contains(&d.event_id) => fresh.push(Fresh {
                id: d.id,
                tenant_id: d.tenant_id,
                event_id: d.event_id,
                destination_id: d.destination_id,
                wap_event_id: e.wap_event_id.clone(),
                event_type: e.event_type.clone(),
                body: e.body.clone(),
                max_in_flight: c.max_in_flight,
                timeout_ms: c.timeout_ms,
            }),
            _ => dropped.push((d.tenant_id, d.destination_id)),
        }
    }
    reservations.held = dropped;
    if !fresh.is_empty() {
        handoff.hand_over(fresh);
    }
}
