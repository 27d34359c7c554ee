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
    /// Whether `reserve` would promise one more delivery to each of `destinations` (each with
    /// its `max_in_flight` and in-flight count) for `tenant`.
    pub fn has_room(
        &self,
        tenant: TenantId,
        destinations: &[(DestinationId, u32, u32)],
        bounds: Bounds,
    ) -> bool {
        let n = destinations.len();
        let share = self.tenants.get(&tenant).copied().unwrap_or(0) as usize;
        !self.closed
            && self.total + n <= bounds.total
            && share + n <= bounds.tenant as usize
            && destinations.iter().all(|(d, max_in_flight, in_flight)| {
                self.destinations.get(d).copied().unwrap_or(0) + in_flight
                    < bounds.destination_factor * max_in_flight
            })
    }

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
    /// `permits` (slots), `room` (recorder), each destination's `max_in_flight`
    /// (`slots(destination, max_in_flight, waiting)`: how many more of `waiting` may start) and
    /// each tenant's cap (`tenant_room(tenant)`) allow.
    pub fn startable(
        &mut self,
        mut permits: usize,
        mut room: usize,
        now: Instant,
        slots: impl Fn(DestinationId, u32, u32) -> u32,
        tenant_room: impl Fn(TenantId) -> u32,
    ) -> Vec<(Fresh, Arc<Prepared>, Duration)> {
        let mut tenants: HashMap<TenantId, u32> = HashMap::new();
        let mut waiting: HashMap<DestinationId, u32> = HashMap::new();
        for w in &self.queue {
            *waiting.entry(w.fresh.destination_id).or_default() += 1;
        }
        let mut starting: HashMap<DestinationId, u32> = HashMap::new();
        let mut blocked: Vec<DestinationId> = Vec::new();
        let mut take = Vec::new();
        for (i, w) in self.queue.iter().enumerate() {
            let d = w.fresh.destination_id;
            if blocked.contains(&d) {
                continue;
            }
            let n = starting.entry(d).or_insert_with(|| slots(d, w.fresh.max_in_flight, waiting[&d]));
            // Past its deadline a delivery no longer fits in its lease: `expired` gives it back.
            let ready = matches!(w.stage, Stage::Ready(_)) && now < w.deadline;
            let t = tenants.entry(w.fresh.tenant_id).or_insert_with(|| tenant_room(w.fresh.tenant_id));
            if permits > 0 && room > 0 && ready && *n > 0 && *t > 0 {
                *n -= 1;
                *t -= 1;
                permits -= 1;
                room -= 1;
                take.push(i);
            } else {
                blocked.push(d);
            }
        }
        let mut i = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::{DeliveryId, EventId};

    const BOUNDS: Bounds = Bounds { total: 10, tenant: 6, destination_factor: 2 };

    fn fresh(tenant: TenantId, destination: DestinationId, n: u32) -> Fresh {
        Fresh {
            id: DeliveryId::new(),
            tenant_id: tenant,
            event_id: EventId::new(),
            destination_id: destination,
            wap_event_id: format!("e{n}"),
            event_type: "message.received".into(),
            body: bytes::Bytes::new(),
            max_in_flight: 2,
            timeout_ms: 1_000,
        }
    }

    #[test]
    fn reservations_stay_within_every_bound_and_settle() {
        let mut s = State::default();
        let (t, u) = (TenantId::new(), TenantId::new());
        let (d, e) = (DestinationId::new(), DestinationId::new());
        // Per destination: reserved + in flight below 2 x max_in_flight (2).
        assert!(s.reserve(t, d, 2, 1, BOUNDS));
        assert!(s.reserve(t, d, 2, 1, BOUNDS));
        assert!(s.reserve(t, d, 2, 1, BOUNDS));
        assert!(!s.reserve(t, d, 2, 1, BOUNDS));
        assert!(!s.has_room(t, &[(d, 2, 1)], BOUNDS));
        // Per tenant: 6.
        assert!(
            s.reserve(t, e, 10, 0, BOUNDS)
                && s.reserve(t, e, 10, 0, BOUNDS)
                && s.reserve(t, e, 10, 0, BOUNDS)
        );
        assert!(!s.reserve(t, e, 10, 0, BOUNDS));
        assert!(s.has_room(u, &[(e, 10, 0)], BOUNDS), "another tenant is not held back");
        s.settle(t, d);
        assert!(s.reserve(t, d, 2, 1, BOUNDS));
        assert_eq!(s.total, 6);
        assert_eq!(s.close().len(), 0);
        assert!(!s.reserve(u, e, 10, 0, BOUNDS), "closed");
    }

    #[test]
    fn deliveries_start_in_order_per_destination_as_tokens_and_slots_allow() {
        let mut s = State::default();
        let (t, d, e) = (TenantId::new(), DestinationId::new(), DestinationId::new());
        let now = Instant::now();
        for n in 0..3 {
            assert!(s.reserve(t, d, 2, 0, BOUNDS));
            s.push(fresh(t, d, n), now);
        }
        assert!(s.reserve(t, e, 2, 0, BOUNDS));
        s.push(fresh(t, e, 9), now);
        assert_eq!(s.ask(), [(d, 3), (e, 1)]);
        // Two tokens for d, none for e (refused: it leaves the queue).
        let p = crate::prepare::tests::prepared();
        let grants = HashMap::from([(d, (Some(p.clone()), 2)), (e, (Some(p), 0))]);
        let refused = s.answer(&grants);
        // Asking deliveries without a token leave the queue (their leases are given back).
        assert_eq!(refused.iter().map(|f| f.fresh_name()).collect::<Vec<_>>(), ["e2", "e9"]);
        assert_eq!(s.total, 2);
        // One slot free at d (max_in_flight 2, one busy): the first; then the next.
        let started = s.startable(10, 10, Instant::now(), |_, max, _| max - 1, |_| u32::MAX);
        assert_eq!(started.iter().map(|(f, ..)| f.fresh_name()).collect::<Vec<_>>(), ["e0"]);
        assert!(
            s.startable(0, 10, Instant::now(), |_, max, _| max, |_| u32::MAX).is_empty(),
            "no permit, no start"
        );
        let started = s.startable(10, 10, Instant::now(), |_, max, _| max, |_| u32::MAX);
        assert_eq!(started.iter().map(|(f, ..)| f.fresh_name()).collect::<Vec<_>>(), ["e1"]);
        assert_eq!(s.total, 0);
        // A pending delivery holds back the ready ones after it at the same destination.
        for n in 3..5 {
            assert!(s.reserve(t, d, 2, 0, BOUNDS));
            s.push(fresh(t, d, n), now);
        }
        s.ask();
        let p = crate::prepare::tests::prepared();
        s.answer(&HashMap::from([(d, (Some(p), 2))]));
        assert!(s.reserve(t, d, 2, 0, BOUNDS));
        s.push(fresh(t, d, 5), now);
        let started = s.startable(10, 10, Instant::now(), |_, max, _| max, |_| u32::MAX);
        assert_eq!(started.iter().map(|(f, ..)| f.fresh_name()).collect::<Vec<_>>(), ["e3", "e4"]);
        assert!(
            s.startable(10, 10, Instant::now(), |_, max, _| max, |_| u32::MAX).is_empty(),
            "e5 has no token yet"
        );
    }

    #[test]
    fn a_tenant_at_its_cap_starts_nothing_and_another_starts() {
        let mut s = State::default();
        let (full, other) = (TenantId::new(), TenantId::new());
        let (d, e) = (DestinationId::new(), DestinationId::new());
        let now = Instant::now();
        for (t, dest, n) in [(full, d, 0), (full, d, 1), (other, e, 2)] {
            assert!(s.reserve(t, dest, 4, 0, BOUNDS));
            s.push(fresh(t, dest, n), now);
        }
        s.ask();
        let p = crate::prepare::tests::prepared();
        s.answer(&HashMap::from([(d, (Some(p.clone()), 2)), (e, (Some(p), 1))]));
        let room = |t: TenantId| if t == full { 1 } else { u32::MAX };
        let started = s.startable(10, 10, Instant::now(), |_, max, _| max, room);
        assert_eq!(started.iter().map(|(f, ..)| f.fresh_name()).collect::<Vec<_>>(), ["e0", "e2"]);
    }

    #[test]
    fn deliveries_past_their_deadline_leave_unless_asking() {
        let mut s = State::default();
        let (t, d) = (TenantId::new(), DestinationId::new());
        let then = Instant::now();
        for n in 0..2 {
            assert!(s.reserve(t, d, 2, 0, BOUNDS));
            s.push(fresh(t, d, n), then);
        }
        let later = then + Duration::from_secs(2);
        assert_eq!(s.expired(later).len(), 2);
        assert_eq!(s.total, 0);
    }

    trait Name {
        fn fresh_name(&self) -> &str;
    }

    impl Name for Fresh {
        fn fresh_name(&self) -> &str {
            &self.wap_event_id
        }
    }
}
