//! The lane's bookkeeping, without I/O: what ingest was promised (per destination, per tenant,
//! in all), and the deliveries handed over, each on its way from `Pending` (no limiter token yet)
//! through `Asking` (a token is being asked for) to `Ready` (token granted, waiting for a slot).
//!
//! Invariants: attempts to one destination start in hand-over order (a destination's first
//! waiting delivery that cannot start holds back its later ones); every delivery that leaves the
//! queue (started, refused, expired, or at close) settles its reservation exactly once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use relay_core::{DestinationId, TenantId};
use relay_store::handoff::Fresh;
use tokio::time::{Duration, Instant};

use crate::prepare::Prepared;

pub(crate) enum Stage {
    Pending,
    Asking,
    Ready(Arc<Prepared>),
}

pub(crate) struct Waiting {
    pub fresh: Fresh,
    pub since: Instant,
    /// The attempt must start by then to fit in its lease.
    pub deadline: Instant,
    pub stage: Stage,
}

/// The bounds of what the lane promises.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Reservations in all.
    pub total: usize,
    /// Per tenant.
    pub tenant: u32,
    /// Reserved plus in flight, per destination, as a multiple of its `max_in_flight`.
    pub destination_factor: u32,
}

#[derive(Default)]
pub(crate) struct State {
    queue: VecDeque<Waiting>,
    destinations: HashMap<DestinationId, u32>,
    tenants: HashMap<TenantId, u32>,
    total: usize,
    pub closed: bool,
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl State {
    /// Promises the first attempt of a delivery, within the bounds.
    pub fn reserve(
        &mut self,
        tenant: TenantId,
        destination: DestinationId,
        max_in_flight: u32,
        in_flight: u32,
        bounds: Bounds,
    ) -> bool {
        let queued = self.destinations.get(&destination).copied().unwrap_or(0);
        let share = self.tenants.get(&tenant).copied().unwrap_or(0);
        if self.closed
            || self.total >= bounds.total
            || queued + in_flight >= bounds.destination_factor * max_in_flight
            || share >= bounds.tenant
        {
            return false;
        }
        *self.destinations.entry(destination).or_default() += 1;
        *self.tenants.entry(tenant).or_default() += 1;
        self.total += 1;
        true
    }

    /// A promise ended (cancelled by ingest, or its delivery left the queue).
    pub fn settle(&mut self, tenant: TenantId, destination: DestinationId) {
        decrement(&mut self.destinations, destination);
        decrement(&mut self.tenants, tenant);
        self.total = self.total.saturating_sub(1);
    }

    pub fn push(&mut self, fresh: Fresh, now: Instant) {
        // The attempt must start within one timeout of the hand-over (see `Lane::lease_ms`).
        let deadline = now + Duration::from_millis(u64::from(fresh.timeout_ms));
        self.queue.push_back(Waiting { fresh, since: now, deadline, stage: Stage::Pending });
    }

    /// Removes what matches `leave`, in order, settling each.
    fn remove(&mut self, mut leave: impl FnMut(&Waiting) -> bool) -> Vec<Waiting> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.queue.len());
        for w in self.queue.drain(..) {
            if leave(&w) { out.push(w) } else { keep.push_back(w) }
        }
        self.queue = keep;
        for w in &out {
            let (t, d) = (w.fresh.tenant_id, w.fresh.destination_id);
            self.settle(t, d);
        }
        out
    }

    /// The deliveries that waited past their deadline (not while a token is being asked for).
    pub fn expired(&mut self, now: Instant) -> Vec<Fresh> {
        self.remove(|w| now >= w.deadline && !matches!(w.stage, Stage::Asking))
            .into_iter()
            .map(|w| w.fresh)
            .collect()
    }

    /// Marks the pending deliveries as asking; returns how many each destination asks for.
    pub fn ask(&mut self) -> Vec<(DestinationId, u32)> {
        let mut order: Vec<(DestinationId, u32)> = Vec::new();
        for w in self.queue.iter_mut().filter(|w| matches!(w.stage, Stage::Pending)) {
            w.stage = Stage::Asking;
            match order.iter_mut().find(|(d, _)| *d == w.fresh.destination_id) {
                Some((_, n)) => *n += 1,
                None => order.push((w.fresh.destination_id, 1)),
            }
        }
        order
    }

    /// The limiter's answer: per destination, its prepared form (`None`: unusable) and how many
    /// tokens were granted. The first asking deliveries of each get the tokens; the others leave
    /// the queue and are returned (their leases are to be given back).
    pub fn answer(&mut self, grants: &HashMap<DestinationId, (Option<Arc<Prepared>>, u32)>) -> Vec<Fresh> {
        let mut left: HashMap<DestinationId, u32> = grants.iter().map(|(d, (_, n))| (*d, *n)).collect();
        for w in self.queue.iter_mut().filter(|w| matches!(w.stage, Stage::Asking)) {
            let d = w.fresh.destination_id;
            if let (Some((Some(p), _)), Some(n)) = (grants.get(&d), left.get_mut(&d))
                && *n > 0
            {
                *n -= 1;
                w.stage = Stage::Ready(p.clone());
            }
        }
        self.remove(|w| matches!(w.stage, Stage::Asking)).into_iter().map(|w| w.fresh).collect()
    }

    /// Removes the ready deliveries that can start now: in order per destination, while
    /// `permits` (slots), `room` (recorder) and each destination's `max_in_flight` allow.
    pub fn startable(
        &mut self,
        mut permits: usize,
        mut room: usize,
        busy: impl Fn(DestinationId) -> u32,
    ) -> Vec<(Fresh, Arc<Prepared>, Duration)> {
        let mut starting: HashMap<DestinationId, u32> = HashMap::new();
        let mut blocked: Vec<DestinationId> = Vec::new();
        let mut take = Vec::new();
        for (i, w) in self.queue.iter().enumerate() {
            let d = w.fresh.destination_id;
            if blocked.contains(&d) {
                continue;
            }
            let n = starting.entry(d).or_insert_with(|| busy(d));
            if permits > 0 && room > 0 && matches!(w.stage, Stage::Ready(_)) && *n < w.fresh.max_in_flight {
                *n += 1;
                permits -= 1;
                room -= 1;
                take.push(i);
            } else {
                blocked.push(d);
            }
        }
        let mut i = 0;
        let now = Instant::now();
        let started = self.remove(|_| {
            let hit = take.binary_search(&i).is_ok();
            i += 1;
            hit
        });
        started
            .into_iter()
            .filter_map(|w| match w.stage {
                Stage::Ready(p) => Some((w.fresh, p, now.duration_since(w.since))),
                _ => None,
            })
            .collect()
    }

    /// Stops taking deliveries; returns what was waiting.
    pub fn close(&mut self) -> Vec<Fresh> {
        self.closed = true;
        self.remove(|_| true).into_iter().map(|w| w.fresh).collect()
    }
}
