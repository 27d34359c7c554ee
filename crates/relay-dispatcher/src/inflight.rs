//! Attempts in flight: the concurrency bound (a semaphore), the per-destination in-flight counts
//! (for `max_in_flight`, with the fleet's share in [`Fleet`]), the per-tenant counts and cap
//! (CONTRACT §10: a tenant holds at most half of the process's slots, so another tenant always
//! finds slots, for the rounds and for the lane beyond the quarter the lane leaves to the rounds,
//! however slow the first one's endpoints are), the leases being
//! worked on (given back at shutdown), and the task that runs one attempt and hands its record
//! to the recorder.
//!
//! Invariant: a lease stays in [`InFlight::leases`] until its attempt's HTTP exchange is over, so
//! at shutdown every row whose attempt did not finish is given back; the permit and the
//! destination's count are released as soon as the exchange ends (the slot is free for the next
//! attempt while the record waits for the recorder), or however else the task ends (cancelled).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use relay_core::{AttemptId, DeliveryId, DestinationId, TenantId};
use relay_store::Redis;
use relay_store::dispatch::{ClaimedDelivery, ClaimedEvent};
use relay_store::outcomes::AttemptRecord;
use time::OffsetDateTime;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::attempt::{self, Payload};
use crate::fleet::Fleet;
use crate::outcome;
use crate::prepare::Prepared;
use crate::recorder::Recorder;
use crate::request::Outbound;

pub(crate) struct InFlight {
    pub permits: Arc<Semaphore>,
    /// The destinations' slots shared with the other dispatchers of the fleet.
    pub fleet: Fleet,
    counts: Mutex<HashMap<DestinationId, u32>>,
    tenants: Mutex<HashMap<TenantId, u32>>,
    /// The most slots one tenant may hold.
    tenant_cap: u32,
    leases: Mutex<HashMap<(DeliveryId, Uuid), TenantId>>,
    /// Signalled whenever an attempt ends and frees capacity: one for the rounds, one for the lane.
    pub freed: Notify,
    pub freed_lane: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InFlight {
    pub fn new(concurrency: usize, redis: Redis) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            fleet: Fleet::new(redis),
            counts: Mutex::default(),
            tenants: Mutex::default(),
            tenant_cap: tenant_cap(concurrency),
            leases: Mutex::default(),
            freed: Notify::new(),
            freed_lane: Notify::new(),
        }
    }

    pub fn count(&self, destination: DestinationId) -> u32 {
        lock(&self.counts).get(&destination).copied().unwrap_or(0)
    }

    /// The attempts `tenant` has running.
    pub fn held(&self, tenant: TenantId) -> u32 {
        lock(&self.tenants).get(&tenant).copied().unwrap_or(0)
    }

    /// How many more attempts `tenant` may start: under its cap, whatever is free.
    pub fn tenant_room(&self, tenant: TenantId) -> u32 {
        self.tenant_cap.saturating_sub(self.held(tenant))
    }

    /// The tenants at their cap (a round skips their destinations).
    pub fn tenants_at_cap(&self) -> Vec<TenantId> {
        lock(&self.tenants).iter().filter(|(_, n)| **n >= self.tenant_cap).map(|(t, _)| *t).collect()
    }

    /// The attempts running, per destination.
    pub fn busy(&self) -> Vec<(DestinationId, u32)> {
        lock(&self.counts).iter().map(|(d, n)| (*d, *n)).collect()
    }

    /// How many more attempts to `destination` may start now, of `wanted` more: under its
    /// `max_in_flight`, held across the fleet.
    pub fn room(&self, destination: DestinationId, max_in_flight: u32, wanted: u32) -> u32 {
        let busy = self.count(destination);
        self.fleet.limit(destination, max_in_flight, busy + wanted).saturating_sub(busy)
    }

    /// The destinations whose in-flight count reached their `max_in_flight` (in the fleet).
    pub fn full(&self, max_in_flight: impl Fn(DestinationId) -> Option<u32>) -> Vec<DestinationId> {
        self.busy()
            .into_iter()
            .filter(|&(id, n)| max_in_flight(id).is_some_and(|max| n >= self.fleet.limit(id, max, 0)))
            .map(|(id, _)| id)
            .collect()
    }

    /// The leases whose attempts never finished (called once the tasks are gone).
    pub fn take_leases(&self) -> Vec<(DeliveryId, TenantId, Uuid)> {
        lock(&self.leases).drain().map(|((id, lease), tenant)| (id, tenant, lease)).collect()
    }

    /// Counts an attempt as started (before its task is spawned, so the next round sees it).
    pub fn begin(
        self: &Arc<Self>,
        destination: DestinationId,
        delivery: DeliveryId,
        tenant: TenantId,
        lease: Uuid,
        permit: OwnedSemaphorePermit,
    ) -> Slot {
        *lock(&self.counts).entry(destination).or_insert(0) += 1;
        *lock(&self.tenants).entry(tenant).or_insert(0) += 1;
        lock(&self.leases).insert((delivery, lease), tenant);
        Slot { in_flight: self.clone(), destination, tenant, _permit: permit }
    }

    fn end(&self, destination: DestinationId, tenant: TenantId) {
        decrement(&mut lock(&self.counts), destination);
        decrement(&mut lock(&self.tenants), tenant);
        self.fleet.ended(destination);
        self.freed.notify_one();
        self.freed_lane.notify_one();
    }
}

/// Releases the destination's slot when the task ends, however it ends.
pub(crate) struct Slot {
    in_flight: Arc<InFlight>,
    destination: DestinationId,
    tenant: TenantId,
    _permit: OwnedSemaphorePermit,
}

/// Half of `concurrency` (at least one): what one tenant may hold of a process.
fn tenant_cap(concurrency: usize) -> u32 {
    u32::try_from(concurrency / 2).unwrap_or(u32::MAX).max(1)
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.end(self.destination, self.tenant);
    }
}

/// What every attempt task shares.
pub(crate) struct Context {
    pub client: reqwest::Client,
    pub records: Recorder,
    pub in_flight: Arc<InFlight>,
    pub cancel: CancellationToken,
}

/// Runs one attempt of a claimed delivery whose event is present, holding its `slot` for the
/// HTTP exchange only.
pub(crate) async fn run_attempt(
    ctx: Arc<Context>,
    dest: Arc<Prepared>,
    claimed: ClaimedDelivery,
    event: ClaimedEvent,
    slot: Slot,
) {
    let body = event.body;
    let number = claimed.number;
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let outbound = Outbound {
        event_id: claimed.event_id,
        wap_event_id: &event.wap_event_id,
        event_type: &event.event_type,
        attempt: number,
        timestamp,
        body: &body,
        secrets: &dest.secrets,
    };
    let payload = Payload { outbound, body: body.clone() };
    let report = tokio::select! {
        report = attempt::perform(&ctx.client, &dest, payload) => report,
        () = ctx.cancel.cancelled() => return,
    };
    lock(&ctx.in_flight.leases).remove(&(claimed.id, claimed.lease_token));
    drop(slot);
    let jitter = rand::random_range(-1.0..=1.0);
    let now = OffsetDateTime::now_utc();
    // The backoff restarts with the window: a redelivered delivery waits as a new one would.
    let attempt_no = u32::try_from(number - claimed.attempts_before_window).unwrap_or(1).max(1);
    let (next, gone) = outcome::decide(&report, &dest.policy, attempt_no, claimed.window_start, now, jitter);
    metrics::histogram!("relay_delivery_attempt_duration_seconds").record(report.duration.as_secs_f64());
    // One line per attempt; never the URL (its query may carry a token) nor the bodies.
    tracing::info!(
        tenant.id = %claimed.tenant_id,
        delivery.id = %claimed.id,
        destination.id = %claimed.destination_id,
        attempt.number = number,
        attempt.trigger = claimed.trigger.as_str(),
        attempt.outcome = report.outcome.as_str(),
        attempt.status = report.status.map(i32::from),
        attempt.duration_ms = report.duration.as_millis() as u64,
        "attempt"
    );
    if report.outcome == relay_store::outcomes::AttemptOutcome::Success {
        // The event id is a UUIDv7 minted when ingest accepted the event.
        let accepted_ms = (claimed.event_id.uuid().as_u128() >> 80) as i128;
        let latency_ms = (now.unix_timestamp_nanos() / 1_000_000 - accepted_ms).max(0);
        metrics::histogram!("relay_delivery_latency_seconds").record(latency_ms as f64 / 1000.0);
    }
    let record = AttemptRecord {
        id: AttemptId::new(),
        delivery_id: claimed.id,
        tenant_id: claimed.tenant_id,
        destination_id: claimed.destination_id,
        lease_token: claimed.lease_token,
        number,
        trigger: claimed.trigger,
        started_at: report.started_at,
        duration_ms: i32::try_from(report.duration.as_millis()).unwrap_or(i32::MAX),
        url: dest.url.to_string(),
        outcome: report.outcome,
        status_code: report.status.map(i32::from),
        response_headers: report.headers,
        response_body: report.body,
        error: report.error,
        next,
        gone,
        known_failing_since: Some(dest.failing_since),
    };
    // Waits while the recorder's queue is full; the slot is already free (new attempts are held
    // back by the recorder's room instead).
    if ctx.records.send(record).await.is_err() {
        tracing::error!(delivery.id = %claimed.id, "the recorder is gone; the attempt will be made again");
    }
}
