//! `max_in_flight` across a fleet of dispatchers (CONTRACT §4: at most N concurrent requests to
//! a destination, whichever processes send them). The slots live in Redis
//! (`relay_store::slots`): each process holds some of a destination's slots and runs at most
//! that many attempts to it. The hot path stays local: a process asks Redis only when it wants
//! more slots than it holds, and gives slots back in batches after its attempts end.
//!
//! Modes, from the heartbeat (once a second):
//! - *alone* (the only live dispatcher): the local count is the fleet's, Redis is not asked;
//! - *shared* (others are live): attempts run within the slots held;
//! - *warming up*: a process that finds others live at its start waits until each of them has
//!   beaten once and published the slots of the attempts it runs;
//! - *unshared* (Redis unavailable): each process keeps `max_in_flight` on its own, so a fleet of
//!   n may send n times as many (the documented fallback).
//!
//! The heartbeat also hands back the leases of a dead process (CONTRACT §10): lease tokens carry
//! their process's id (`relay_store::lease`), and the one beat that takes an expired process
//! out of the live set makes its leased rows due at once, instead of after their lease. A
//! process thought dead while it was only slow loses nothing: its late outcomes no longer match
//! the row's lease and are dropped, and the row is attempted again (at least once, never lost;
//! see docs/recovery.md for the bound on duplicates).
//!
//! Invariant: in shared mode a process starts an attempt only within the slots Redis granted it,
//! and it asks for slots only as `desired` over a `floor` of what it already runs; a process
//! leaving *alone* publishes what it runs before it starts anything more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use relay_core::DestinationId;
use relay_store::lease::{self, LeaseHolder};
use relay_store::slots::{self, Beat, SlotAsk};
use relay_store::{PgPool, Redis};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::inflight::InFlight;

const BEAT_EVERY: Duration = Duration::from_secs(1);
/// A process that has not beaten for this long is dead to the others: its slots are free.
const BEAT_TTL: Duration = Duration::from_secs(5);
/// Longer than a beat plus a sync: by then every live process has published its slots.
const WARM_UP: Duration = Duration::from_millis(2_500);
/// Slot changes are gathered this long before they are sent (one round trip for many).
const GATHER: Duration = Duration::from_millis(20);
/// A demand Redis refused is asked again this often while it lasts.
const REFUSED_RETRY: Duration = Duration::from_millis(100);
/// A demand not renewed for this long is forgotten.
const DEMAND_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Starting,
    Alone,
    WarmingUp(Instant),
    Shared,
    Unshared,
}

/// This process's slots of one destination, and what it wants of them.
#[derive(Debug, Default)]
struct Held {
    slots: u32,
    max: u32,
    demand: u32,
    demanded_at: Option<Instant>,
    /// To be sent at the next sync.
    dirty: bool,
    /// Refused: asked again no sooner than this.
    retry_at: Option<Instant>,
}

struct State {
    mode: Mode,
    held: HashMap<DestinationId, Held>,
}

pub(crate) struct Fleet {
    redis: Redis,
    /// This process: its heartbeat's name is `holder.id()`, and its lease tokens carry it.
    holder: LeaseHolder,
    me: String,
    state: Mutex<State>,
    kick: Notify,
}

impl Fleet {
    pub fn new(redis: Redis) -> Self {
        let holder = LeaseHolder::random();
        Self {
            redis,
            holder,
            me: holder.id(),
            state: Mutex::new(State { mode: Mode::Starting, held: HashMap::new() }),
            kick: Notify::new(),
        }
    }

    /// A new lease token of this process (every claim and hand-off takes one from here).
    pub fn lease_token(&self) -> uuid::Uuid {
        self.holder.mint()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The concurrent attempts this process may run to `destination` now. `wanted` is how many
    /// it would like to run (in flight plus waiting); in shared mode, wanting more than it holds
    /// asks the fleet for them (the answer comes with a `freed` signal).
    pub fn limit(&self, destination: DestinationId, max: u32, wanted: u32) -> u32 {
        let mut state = self.lock();
        let mode = state.mode;
        match mode {
            Mode::Alone | Mode::Unshared => max,
            Mode::Starting => 0,
            Mode::WarmingUp(_) | Mode::Shared => {
                let now = Instant::now();
                let h = state.held.entry(destination).or_default();
                h.max = max;
                let wanted = wanted.min(max);
                let mut kick = false;
                if wanted > h.slots {
                    h.demand = wanted;
                    h.demanded_at = Some(now);
                    kick = !h.dirty && h.retry_at.is_none_or(|t| t <= now);
                    h.dirty = true;
                }
                let slots = if mode == Mode::Shared { h.slots.min(max) } else { 0 };
                drop(state);
                if kick {
                    self.kick.notify_one();
                }
                slots
            }
        }
    }

    /// Whether the fleet just refused this process slots of `destination` (fresh work for it is
    /// better queued for the process that holds them).
    pub fn refused(&self, destination: DestinationId) -> bool {
        let state = self.lock();
        state.mode == Mode::Shared
            && state.held.get(&destination).is_some_and(|h| h.slots == 0 && h.retry_at.is_some())
    }

    /// An attempt to `destination` ended: in shared mode its slot goes back to the fleet at the
    /// next sync, unless another attempt takes it first.
    pub fn ended(&self, destination: DestinationId) {
        let mut state = self.lock();
        if state.mode == Mode::Shared
            && let Some(h) = state.held.get_mut(&destination)
        {
            h.dirty = true;
            drop(state);
            self.kick.notify_one();
        }
    }

    /// The heartbeat's answer (live dispatchers, `None` when Redis is unavailable) applied to
    /// the mode; `busy` lists the attempts running per destination.
    fn heard_beat(&self, live: Option<u32>, busy: &[(DestinationId, u32)]) -> Option<Vec<SlotAsk>> {
        let now = Instant::now();
        let mut state = self.lock();
        let next = match (state.mode, live) {
            (_, None) => Mode::Unshared,
            (Mode::Starting, Some(n)) if n > 1 => Mode::WarmingUp(now + WARM_UP),
            (Mode::WarmingUp(until), Some(_)) if now < until => Mode::WarmingUp(until),
            (Mode::Starting | Mode::Alone, Some(1)) => Mode::Alone,
            (_, Some(1)) => {
                // Alone again: the slots held go back, so a newcomer finds them free.
                let asks = state.held.drain().map(|(d, h)| release(d, h.max)).collect();
                state.mode = Mode::Alone;
                return Some(asks);
            }
            (_, Some(_)) => Mode::Shared,
        };
        if next == Mode::Shared {
            // Publish what runs (leaving alone or unshared), and refresh what is held.
            for &(d, n) in busy {
                let h = state.held.entry(d).or_default();
                h.slots = h.slots.max(n);
                h.max = h.max.max(n);
            }
            state.held.values_mut().for_each(|h| h.dirty = true);
        }
        if state.mode != next {
            tracing::info!(from = ?state.mode, to = ?next, "dispatcher fleet mode");
        }
        state.mode = next;
        None
    }

    /// The asks of a sync: every changed destination not waiting out a refusal.
    fn asks(&self, busy: impl Fn(DestinationId) -> u32) -> Vec<SlotAsk> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.mode != Mode::Shared {
            return Vec::new();
        }
        let mut asks = Vec::new();
        state.held.retain(|&d, h| {
            let floor = busy(d);
            let fresh = h.demanded_at.is_some_and(|t| now.duration_since(t) < DEMAND_TTL);
            if !fresh && floor == 0 && h.slots == 0 {
                return false;
            }
            if h.dirty && h.retry_at.is_none_or(|t| t <= now) {
                h.dirty = false;
                let desired = if fresh { h.demand.max(floor) } else { floor };
                asks.push(SlotAsk { destination: d, max_in_flight: h.max.max(floor), floor, desired });
            }
            true
        });
        asks
    }

    /// Applies the grants of `asks`; returns whether any destination got more slots.
    fn granted(&self, asks: &[SlotAsk], grants: Option<Vec<u32>>) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(grants) = grants else {
            if state.mode != Mode::Unshared {
                tracing::warn!("Redis is unavailable: max_in_flight holds per process until it is back");
            }
            state.mode = Mode::Unshared;
            return false;
        };
        let mut more = false;
        for (ask, grant) in asks.iter().zip(grants) {
            let Some(h) = state.held.get_mut(&ask.destination) else { continue };
            more |= grant > h.slots;
            h.slots = grant;
            if grant < ask.desired {
                h.retry_at = Some(now + REFUSED_RETRY);
                h.dirty = true;
            } else {
                h.retry_at = None;
            }
        }
        more
    }
}

impl Fleet {
    /// Hands back the leases of the processes this beat found dead (in the background: the next
    /// beat must not wait for Postgres), and says so when this process had been thought dead.
    fn after_beat(&self, beat: &Beat, pool: &PgPool) {
        if beat.added && self.lock().mode != Mode::Starting {
            tracing::warn!(
                "this dispatcher's heartbeat had lapsed: the fleet may have handed its leases to others"
            );
        }
        let dead: Vec<LeaseHolder> = beat.dead.iter().filter_map(|d| LeaseHolder::parse(d)).collect();
        if dead.is_empty() {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            match lease::release_leases_of(&pool, &dead).await {
                Ok(n) => {
                    tracing::info!(
                        dispatchers = dead.len(),
                        deliveries = n,
                        "handed back the leases of dead dispatchers"
                    );
                    if n > 0 {
                        let _ = relay_store::deliveries::notify_due(&pool).await;
                    }
                }
                // The rows are due again when their lease ends, as without this hand-back.
                Err(e) => tracing::warn!(error = %e, "could not hand back the leases of dead dispatchers"),
            }
        });
    }
}

fn release(destination: DestinationId, max: u32) -> SlotAsk {
    SlotAsk { destination, max_in_flight: max, floor: 0, desired: 0 }
}

/// Keeps this process's heartbeat and slots in Redis until `stop`, then leaves the fleet.
pub(crate) async fn keep(in_flight: Arc<InFlight>, pool: PgPool, stop: CancellationToken) {
    let fleet = &in_flight.fleet;
    let mut next_beat = Instant::now();
    loop {
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + BEAT_EVERY;
            let beat = slots::beat(&fleet.redis, &fleet.me, BEAT_TTL).await;
            if let Some(beat) = &beat {
                fleet.after_beat(beat, &pool);
            }
            if let Some(asks) = fleet.heard_beat(beat.map(|b| b.live), &in_flight.busy()) {
                let _ = slots::sync(&fleet.redis, &fleet.me, &asks).await;
            }
        }
        let asks = fleet.asks(|d| in_flight.count(d));
        if !asks.is_empty() {
            let grants = slots::sync(&fleet.redis, &fleet.me, &asks).await;
            if fleet.granted(&asks, grants) {
                in_flight.freed.notify_one();
                in_flight.freed_lane.notify_one();
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = fleet.kick.notified() => tokio::time::sleep(GATHER).await,
            () = tokio::time::sleep_until(next_beat) => {}
            () = tokio::time::sleep(REFUSED_RETRY), if fleet.lock().held.values().any(|h| h.dirty) => {}
        }
    }
    slots::leave(&fleet.redis, &fleet.me).await;
}
