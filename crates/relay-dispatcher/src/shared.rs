//! What the dispatch rounds (work claimed from the queue) and the lane (work handed over by this
//! process's ingest) share: the HTTP client and recorder, the in-flight bound, the limiter, the
//! tenants and destinations known to be at a limit, and the prepared destinations (cached, and
//! dropped as soon as a destination or its tenant changes anywhere in the fleet).
//!
//! Invariant: an attempt starts only with a permit of the concurrency bound, a granted limiter
//! token and a lease on its row; both paths start attempts through [`Shared::start`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_core::secret::MasterKey;
use relay_core::{DestinationId, TenantId};
use relay_store::PgPool;
use relay_store::dispatch::{ClaimedDelivery, ClaimedEvent, DueDestination, find_usable_destinations};
use relay_store::limiter::{DestinationAsk, TenantAsk};
use relay_store::listen::{CONFIG_CHANNEL, Change, Heard};
use relay_store::watched::Watched;
use time::OffsetDateTime;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::DispatcherConfig;
use crate::inflight::{Context, run_attempt};
use crate::limits::Limiter;
use crate::prepare::{Prepared, prepare};

/// A destination that cannot be used (bad stored URL, undecryptable secret) is looked at again
/// after this long.
pub(crate) const UNUSABLE_PAUSE: Duration = Duration::from_secs(60);
/// A lease outlives the destination's timeout by at least this much (reading the response,
/// scheduling).
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// And by this much more for the outcome's wait in the recorder's queue: attempts stop starting
/// while that queue holds more than a few batches, so the wait is a few batch writes.
const RECORDING_ALLOWANCE: Duration = Duration::from_secs(10);

/// A tenant or destination found at its limit is left alone at least this long: its tokens
/// gather meanwhile (10 of them at 200/s), so a backlog far past its rate costs a few rounds a
/// second, each claiming a batch, instead of a round per token; a round per token kept the
/// dispatcher, Postgres and Redis busy for one tenant at the cost of everyone else's latency
/// (CONTRACT §10). What it delays is only that tenant's own over-limit work, by at most this.
const MIN_THROTTLE: Duration = Duration::from_millis(50);

/// Tenants and destinations known to be at their rate limit (or unusable), until when.
#[derive(Default)]
pub(crate) struct Throttled {
    pub tenants: HashMap<Uuid, Instant>,
    pub destinations: HashMap<Uuid, Instant>,
}

impl Throttled {
    pub fn prune(&mut self, now: Instant) {
        self.tenants.retain(|_, until| *until > now);
        self.destinations.retain(|_, until| *until > now);
    }

    pub fn holds(&self, tenant: TenantId, destination: DestinationId, now: Instant) -> bool {
        let held = |m: &HashMap<Uuid, Instant>, id: Uuid| m.get(&id).is_some_and(|until| *until > now);
        held(&self.tenants, tenant.uuid()) || held(&self.destinations, destination.uuid())
    }

    /// How long until both the tenant and the destination conform, when either is at a limit.
    pub fn next_wait(&self, tenant: TenantId, destination: DestinationId, now: Instant) -> Option<Duration> {
        let until = [self.tenants.get(&tenant.uuid()), self.destinations.get(&destination.uuid())]
            .into_iter()
            .flatten()
            .copied()
            .max()?;
        (until > now).then(|| until - now)
    }

    /// The soonest end of a known limit.
    pub fn next_end(&self) -> Option<Instant> {
        self.tenants.values().chain(self.destinations.values()).copied().min()
    }
}

pub(crate) struct Shared {
    pub pool: PgPool,
    pub key: MasterKey,
    pub config: DispatcherConfig,
    pub limiter: Limiter,
    pub ctx: Arc<Context>,
    pub tracker: TaskTracker,
    pub throttled: Mutex<Throttled>,
    pub destinations: Watched<Uuid, Arc<Prepared>>,
    /// Signalled by the wake-up channel (new due rows anywhere in the fleet).
    pub wake: Notify,
}

/// The rows granted per destination, the tenant groups they were asked in, and whether the
/// grant came from the shared limiter (then unused tokens can be given back).
pub(crate) struct Granted {
    pub items: Vec<(Arc<Prepared>, u32)>,
    pub groups: Vec<Vec<usize>>,
    pub shared: bool,
}

impl Shared {
    pub fn throttled(&self) -> std::sync::MutexGuard<'_, Throttled> {
        self.throttled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A lease long enough for an attempt that starts within `wait` of the claim and for its
    /// outcome to be recorded: the timeout, the margin, the wait in the (bounded) recorder queue.
    pub fn lease_for(&self, timeout: Duration, wait: Duration) -> u32 {
        let lease = self.config.lease_duration.max(wait + timeout + LEASE_MARGIN + RECORDING_ALLOWANCE);
        u32::try_from(lease.as_millis()).unwrap_or(u32::MAX)
    }

    /// Prepares a due destination row (caching it under `ticket`); `None` when it is unusable,
    /// which is logged and paused.
    pub fn prepare(
        &self,
        d: &DueDestination,
        ticket: relay_store::watched::Ticket,
        now: Instant,
    ) -> Option<Arc<Prepared>> {
        let id = d.destination.id;
        let key = &self.key;
        match prepare(
            &d.destination,
            &d.limits,
            key,
            self.config.allow_private_destinations,
            OffsetDateTime::now_utc(),
        ) {
            Ok(p) => {
                let p = Arc::new(p);
                self.destinations.put(ticket, id, p.clone());
                Some(p)
            }
            Err(reason) => {
                tracing::error!(destination.id = %DestinationId::from_uuid(id), reason = %reason, "destination unusable; skipping it");
                self.throttled().destinations.insert(id, now + UNUSABLE_PAUSE);
                None
            }
        }
    }

    /// The prepared destinations of `ids` that can be attempted now (cached, or read); the
    /// missing ones are disabled, deleted, of an inactive tenant, or unusable.
    pub async fn usable(&self, ids: &[Uuid]) -> HashMap<Uuid, Arc<Prepared>> {
        let mut found: HashMap<Uuid, Arc<Prepared>> = HashMap::new();
        let mut missing: Vec<Uuid> = Vec::new();
        for id in ids {
            match self.destinations.get(id) {
                Some(p) => {
                    found.insert(*id, p);
                }
                None if !missing.contains(id) => missing.push(*id),
                None => {}
            }
        }
        if missing.is_empty() {
            return found;
        }
        let ticket = self.destinations.ticket();
        match find_usable_destinations(&self.pool, &missing).await {
            Ok(rows) => {
                let now = Instant::now();
                for d in &rows {
                    if let Some(p) = self.prepare(d, ticket, now) {
                        found.insert(d.destination.id, p);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading destinations failed; their attempts wait"),
        }
        found
    }

    /// What the config announcements mean for the prepared destinations.
    pub fn hear(&self, heard: &Heard<'_>) {
        match heard {
            Heard::Listening => {
                self.destinations.set_listening(true);
                self.wake.notify_one();
            }
            Heard::Lost => self.destinations.set_listening(false),
            Heard::Notification { channel, payload } if *channel == CONFIG_CHANNEL => {
                match Change::parse(payload) {
                    Change::Destination { id, .. } => self.destinations.forget(|k, _| *k == id),
                    Change::Tenant(t) => self.destinations.forget(|_, p| p.tenant_id.uuid() == t),
                    Change::Source(_) => {}
                    Change::Unknown => self.destinations.forget(|_, _| true),
                }
            }
            Heard::Notification { .. } => self.wake.notify_one(),
        }
    }

    /// Asks the limiter for `picked` (destination, attempts wanted), per tenant; notes who is at
    /// a limit, and until when.
    pub async fn take_tokens(&self, picked: &[(Arc<Prepared>, u32)], now: Instant) -> Granted {
        let mut by_tenant: HashMap<TenantId, Vec<usize>> = HashMap::new();
        for (i, (p, _)) in picked.iter().enumerate() {
            by_tenant.entry(p.tenant_id).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = by_tenant.into_values().collect();
        let asks: Vec<TenantAsk> =
            groups.iter().map(|members| ask(picked, members, |i| picked[i].1)).collect();
        let grants = self.limiter.acquire(&asks).await;
        let mut counts = vec![0u32; picked.len()];
        let mut throttled = self.throttled();
        for ((members, grant), ask) in groups.iter().zip(&grants.tenants).zip(&asks) {
            let asked: u32 = ask.destinations.iter().map(|d| d.count).sum();
            let got: u32 = grant.granted.iter().sum();
            if got < asked {
                metrics::counter!("relay_rate_limit_deferrals_total").increment(u64::from(asked - got));
            }
            if got < asked && !grant.tenant_wait.is_zero() {
                throttled.tenants.insert(ask.tenant.uuid(), now + grant.tenant_wait.max(MIN_THROTTLE));
            }
            for (k, &i) in members.iter().enumerate() {
                counts[i] = grant.granted[k];
                if counts[i] < picked[i].1 && !grant.destination_wait[k].is_zero() {
                    let wait = grant.destination_wait[k].max(MIN_THROTTLE);
                    throttled.destinations.insert(picked[i].0.id.uuid(), now + wait);
                }
            }
        }
        Granted {
            items: picked.iter().map(|(p, _)| p.clone()).zip(counts).collect(),
            groups,
            shared: grants.shared,
        }
    }

    /// Gives back the tokens of `granted` that were not used (`unused(i)` per item).
    pub async fn give_back(&self, granted: &Granted, unused: impl Fn(usize) -> u32) {
        if granted.shared && (0..granted.items.len()).any(|i| unused(i) > 0) {
            let refunds: Vec<TenantAsk> =
                granted.groups.iter().map(|members| ask(&granted.items, members, &unused)).collect();
            self.limiter.give_back(&refunds, true).await;
        }
    }

    /// Takes up to `n` permits of the concurrency bound at once (fewer when fewer are free):
    /// work is claimed or started only for permits already held, so a claimed row always has a
    /// slot.
    pub fn permits(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let sem = &self.ctx.in_flight.permits;
        let n = n.min(sem.available_permits());
        if n == 0 {
            return None;
        }
        sem.clone().try_acquire_many_owned(u32::try_from(n).unwrap_or(u32::MAX)).ok()
    }

    /// Starts the attempt of a leased delivery whose event is in hand, in the slot of `permit`.
    pub fn start(
        self: &Arc<Self>,
        dest: Arc<Prepared>,
        claimed: ClaimedDelivery,
        event: ClaimedEvent,
        permit: OwnedSemaphorePermit,
    ) {
        let slot =
            self.ctx.in_flight.begin(dest.id, claimed.id, claimed.tenant_id, claimed.lease_token, permit);
        self.tracker.spawn(run_attempt(self.ctx.clone(), dest, claimed, event, slot));
    }
}

/// The limiter request of one tenant's destinations (`members` index `items`).
fn ask(items: &[(Arc<Prepared>, u32)], members: &[usize], count: impl Fn(usize) -> u32) -> TenantAsk {
    let first = &items[members[0]].0;
    TenantAsk {
        tenant: first.tenant_id,
        rate_per_second: first.tenant_rate,
        burst: first.tenant_burst,
        destinations: members
            .iter()
            .map(|&i| DestinationAsk {
                destination: items[i].0.id,
                count: count(i),
                rate_per_second: items[i].0.rate_per_second,
            })
            .collect(),
    }
}
