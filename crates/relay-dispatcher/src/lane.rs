//! The lane: deliveries that this process's ingest stored already leased to it, attempted
//! straight from memory after the commit (no claim, no read of the event). Ingest asks
//! [`Lane::reserve`] before its write; the lane says yes only while it can start the attempt soon
//! (room in the lane, under the destination's `max_in_flight` with some queueing, under a share
//! of the process's concurrency per tenant, the tenant and destination not at a limit, recording
//! keeping up), otherwise the delivery is queued due now for any dispatcher.
//!
//! Limiter tokens are taken while deliveries wait (a batch at a time), not when a slot frees: a
//! slot that ends its HTTP exchange starts the next ready delivery at once, without a round trip
//! to Redis in between.
//!
//! Invariants: every reserved delivery is started, or its lease is given back (destination no
//! longer usable, limit reached, waited too long, shutdown), so a row never waits for a lease
//! that nobody holds any more; attempts to one destination start in the order the deliveries
//! were handed over; the lane leaves a quarter of the process's concurrency to the rounds, so
//! retries and the queue are never starved by fresh traffic.

mod waiting;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_core::TenantId;
use relay_store::destinations::FanoutDestination;
use relay_store::dispatch::{ClaimedDelivery, ClaimedEvent, Release, Trigger, release_leases};
use relay_store::handoff::{Fresh, Handoff};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::prepare::Prepared;
use crate::shared::Shared;
use waiting::{Bounds, State};

/// A delivery may queue in the lane behind this many times its destination's `max_in_flight`
/// (waiting in memory costs nothing; its start deadline still bounds the wait).
const QUEUE_FACTOR: u32 = 8;
/// How often waiting deliveries are checked for their deadline while nothing else happens.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Lane {
    token: Uuid,
    shared: Arc<Shared>,
    state: Mutex<State>,
    wake: Notify,
    /// Signalled when reservations end.
    eased: Notify,
}

impl Lane {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            token: shared.ctx.in_flight.fleet.lease_token(),
            shared,
            state: Mutex::default(),
            wake: Notify::new(),
            eased: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bounds(&self) -> Bounds {
        let concurrency = self.shared.config.concurrency.max(1);
        Bounds {
            total: concurrency,
            tenant: u32::try_from(concurrency / 2).unwrap_or(u32::MAX).max(1),
            destination_factor: QUEUE_FACTOR,
        }
    }

    /// Runs until `stop`, starting waiting deliveries as slots and tokens allow; then gives back
    /// what is still waiting.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let in_flight = self.shared.ctx.in_flight.clone();
        let drained = self.shared.ctx.records.drained.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = in_flight.freed_lane.notified() => {}
                () = drained.notified() => {}
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            self.pass().await;
        }
        let left = self.lock().close();
        self.give_back(&left, None).await;
    }

    /// Starts what is ready, gives back what expired, and asks tokens for what arrived, until
    /// nothing new waits for a token.
    async fn pass(&self) {
        let _eased = Eased(&self.eased);
        loop {
            let expired = self.lock().expired(Instant::now());
            if !expired.is_empty() {
                tracing::debug!(count = expired.len(), "lane deliveries waited past their start deadline");
                self.give_back(&expired, None).await;
            }
            self.start_ready();
            let asking = self.lock().ask();
            if asking.is_empty() {
                return;
            }
            self.take_tokens(asking).await;
            self.start_ready();
        }
    }

    /// Asks the limiter for the waiting deliveries of each destination; gives back (deferred to
    /// when they conform) those it refuses, and those of destinations no longer usable.
    async fn take_tokens(&self, asking: Vec<(relay_core::DestinationId, u32)>) {
        let now = Instant::now();
        let ids: Vec<Uuid> = asking.iter().map(|(d, _)| d.uuid()).collect();
        let usable = self.shared.usable(&ids).await;
        let picked: Vec<(Arc<Prepared>, u32)> =
            asking.iter().filter_map(|(d, n)| usable.get(&d.uuid()).map(|p| (p.clone(), *n))).collect();
        let granted = self.shared.take_tokens(&picked, now).await;
        let mut grants: HashMap<_, _> = asking.iter().map(|(d, _)| (*d, (None, 0))).collect();
        for (p, n) in &granted.items {
            grants.insert(p.id, (Some(p.clone()), *n));
        }
        let refused = self.lock().answer(&grants);
        let wall = OffsetDateTime::now_utc();
        for f in refused {
            let wait = self.shared.throttled().next_wait(f.tenant_id, f.destination_id, now);
            self.give_back(std::slice::from_ref(&f), wait.map(|w| wall + w)).await;
        }
    }

    /// Starts the ready deliveries that fit in the free slots (no I/O), leaving a quarter of
    /// the process's concurrency to the rounds.
    fn start_ready(&self) {
        let ctx = &self.shared.ctx;
        let headroom = self.shared.config.concurrency / 4;
        let free = ctx.in_flight.permits.available_permits().saturating_sub(headroom);
        let Some(mut permits) = self.shared.permits(free) else { return };
        let room = ctx.records.room();
        let now = Instant::now();
        let in_flight = &ctx.in_flight;
        let starting = self.lock().startable(
            permits.num_permits(),
            room,
            now,
            |d, max, waiting| in_flight.room(d, max, waiting),
            |t| in_flight.tenant_room(t),
        );
        if !starting.is_empty() {
            self.eased.notify_waiters();
        }
        let window_start = OffsetDateTime::now_utc();
        for (f, dest, waited) in starting {
            metrics::histogram!("relay_lane_wait_seconds").record(waited.as_secs_f64());
            let (claimed, event) = self.claimed(f, window_start);
            let permit = permits.split(1).expect("one permit per start");
            self.shared.start(dest, claimed, event, permit);
        }
    }

    fn claimed(&self, f: Fresh, window_start: OffsetDateTime) -> (ClaimedDelivery, ClaimedEvent) {
        let event = ClaimedEvent { wap_event_id: f.wap_event_id, event_type: f.event_type, body: f.body };
        let claimed = ClaimedDelivery {
            id: f.id,
            tenant_id: f.tenant_id,
            event_id: f.event_id,
            destination_id: f.destination_id,
            number: 1,
            trigger: Trigger::Auto,
            window_start,
            attempts_before_window: 0,
            lease_token: self.token,
            event: None,
        };
        (claimed, event)
    }

    /// The releases of `fresh`'s leases, unattempted, due at `at` (now when `None`).
    fn releases(&self, fresh: &[Fresh], at: Option<OffsetDateTime>) -> Vec<Release> {
        let release = |f: &Fresh| Release {
            tenant_id: f.tenant_id,
            id: f.id,
            lease_token: self.token,
            at,
            attempted: false,
        };
        fresh.iter().map(release).collect()
    }

    /// Gives the leases of `fresh` back (due at `at`, now when `None`). A failure leaves the
    /// leases to end by themselves.
    async fn give_back(&self, fresh: &[Fresh], at: Option<OffsetDateTime>) {
        if fresh.is_empty() {
            return;
        }
        let releases = self.releases(fresh, at);
        if let Err(e) = release_leases(&self.shared.pool, &releases).await {
            tracing::warn!(error = %e, count = releases.len(), "could not give lane leases back; they end by themselves");
        }
        self.shared.wake.notify_one();
    }
}

/// Tells ingest that room may have been made, when a pass ends however it ends.
struct Eased<'a>(&'a Notify);

impl Drop for Eased<'_> {
    fn drop(&mut self) {
        self.0.notify_waiters();
    }
}

impl Handoff for Lane {
    fn lease_token(&self) -> Uuid {
        self.token
    }

    fn reserve(&self, tenant: TenantId, destination: &FanoutDestination) -> Option<u32> {
        let ctx = &self.shared.ctx;
        if destination.paused
            || ctx.records.room() == 0
            || self.shared.throttled().holds(tenant, destination.id, Instant::now())
            || ctx.in_flight.fleet.refused(destination.id)
            || ctx.in_flight.tenant_room(tenant) == 0
        {
            return None;
        }
        let in_flight = ctx.in_flight.count(destination.id);
        let bounds = self.bounds();
        if !self.lock().reserve(tenant, destination.id, destination.max_in_flight, in_flight, bounds) {
            return None;
        }
        // The attempt may wait up to one timeout for a slot (see `waiting::State::push`).
        let timeout = Duration::from_millis(u64::from(destination.timeout_ms));
        Some(self.shared.lease_for(timeout, timeout))
    }

    fn hand_over(&self, fresh: Vec<Fresh>) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.closed {
            // Shutting down: nobody here will attempt these; hand them to the fleet now rather
            // than when their leases end.
            drop(state);
            let releases = self.releases(&fresh, None);
            let pool = self.shared.pool.clone();
            tokio::spawn(async move {
                let _ = release_leases(&pool, &releases).await;
            });
            return;
        }
        for f in fresh {
            state.push(f, now);
        }
        drop(state);
        self.wake.notify_one();
    }

    fn cancel(&self, reserved: &[(TenantId, relay_core::DestinationId)]) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        for (tenant, destination) in reserved {
            state.settle(*tenant, *destination);
        }
        drop(state);
        self.eased.notify_waiters();
    }

    fn has_room(&self, tenant: TenantId, destinations: &[&FanoutDestination]) -> bool {
        let in_flight = &self.shared.ctx.in_flight;
        if in_flight.tenant_room(tenant) == 0 {
            return false;
        }
        let wanted: Vec<_> =
            destinations.iter().map(|d| (d.id, d.max_in_flight, in_flight.count(d.id))).collect();
        self.lock().has_room(tenant, &wanted, self.bounds())
    }

    fn eased(&self) -> &Notify {
        &self.eased
    }
}
