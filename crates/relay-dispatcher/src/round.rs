//! One dispatch round: find the destinations with due work, share the free capacity fairly, take
//! limiter tokens, claim exactly that many rows per destination, start their attempts.
//!
//! Invariant: rows are claimed only for granted tokens, free slots and room in the recorder's
//! backlog, so a claimed row's attempt starts at once and its outcome is recorded within its
//! lease; tokens left unused because another process claimed the rows first are given back;
//! tenants and destinations at their limit are skipped by the next queries until their next
//! attempt conforms.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use relay_core::{DestinationId, TenantId};
use relay_store::StoreError;
use relay_store::dispatch::{
    ClaimRequest, DueDestination, claim_deliveries, fail_leased, list_due_destinations,
};
use relay_store::limiter::{DestinationAsk, TenantAsk};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use crate::engine::Engine;
use crate::inflight::run_attempt;
use crate::prepare::{Prepared, prepare};
use crate::share::share;

/// A destination that cannot be used (bad stored URL, undecryptable secret) is looked at again
/// after this long.
const UNUSABLE_PAUSE: Duration = Duration::from_secs(60);
/// A lease outlives the destination's timeout by at least this much (reading the response,
/// scheduling).
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// And by this much more for the outcome's wait in the recorder's queue: claims stop while that
/// queue holds more than a few batches, so the wait is a few batch writes.
const RECORDING_ALLOWANCE: Duration = Duration::from_secs(10);

impl Engine {
    /// Returns whether it is worth running another round at once (it claimed something).
    pub(crate) async fn round(&mut self) -> Result<bool, StoreError> {
        let now = Instant::now();
        self.throttled_tenants.retain(|_, until| *until > now);
        self.throttled_destinations.retain(|_, until| *until > now);
        self.capacity_bound = false;
        // Recording behind counts like a lack of slots: claiming more would only queue outcomes
        // that may outlive their leases.
        let free = self
            .ctx
            .in_flight
            .permits
            .available_permits()
            .min(self.config.batch_size.max(1) as usize)
            .min(self.ctx.records.room()) as u32;
        if free == 0 {
            self.capacity_bound = true;
            return Ok(false);
        }
        let full = self.ctx.in_flight.full(|id| self.max_in_flight.get(&id.uuid()).copied());
        self.capacity_bound = !full.is_empty();
        let skip_destinations: Vec<Uuid> =
            self.throttled_destinations.keys().copied().chain(full.iter().map(|id| id.uuid())).collect();
        let skip_tenants: Vec<Uuid> = self.throttled_tenants.keys().copied().collect();
        let due = list_due_destinations(&self.pool, free, &skip_destinations, &skip_tenants).await?;
        if due.is_empty() {
            return Ok(false);
        }
        let ready = self.prepare_all(due, now);
        let wants: Vec<(TenantId, u32)> = ready.iter().map(|(p, want)| (p.tenant_id, *want)).collect();
        let shares = share(free, &wants, self.rotation);
        self.rotation = self.rotation.wrapping_add(1);
        let total_want: u32 = wants.iter().map(|(_, w)| w).sum();
        if total_want > free {
            self.capacity_bound = true;
        }
        let picked: Vec<(Arc<Prepared>, u32)> =
            ready.into_iter().zip(shares).filter(|(_, s)| *s > 0).map(|((p, _), s)| (p, s)).collect();
        let granted = self.take_tokens(&picked, now).await;
        self.claim_and_start(granted).await
    }

    /// Prepares the due destinations and how many attempts each could start now.
    fn prepare_all(&mut self, due: Vec<DueDestination>, now: Instant) -> Vec<(Arc<Prepared>, u32)> {
        let wall = OffsetDateTime::now_utc();
        let mut ready = Vec::with_capacity(due.len());
        for d in due {
            let id = d.destination.id;
            match prepare(&d.destination, &d.limits, &self.key, self.config.allow_private_destinations, wall)
            {
                Ok(p) => {
                    self.max_in_flight.insert(id, p.max_in_flight);
                    let room = p.max_in_flight.saturating_sub(self.ctx.in_flight.count(p.id));
                    let want = d.due.min(room);
                    self.capacity_bound |= want < d.due;
                    if want > 0 {
                        ready.push((Arc::new(p), want));
                    }
                }
                Err(reason) => {
                    tracing::error!(destination.id = %DestinationId::from_uuid(id), reason = %reason, "destination unusable; skipping it");
                    self.throttled_destinations.insert(id, now + UNUSABLE_PAUSE);
                }
            }
        }
        ready
    }

    /// Asks the limiter for the shares, per tenant; notes who is at a limit, and until when.
    async fn take_tokens(&mut self, picked: &[(Arc<Prepared>, u32)], now: Instant) -> Granted {
        let mut by_tenant: HashMap<TenantId, Vec<usize>> = HashMap::new();
        for (i, (p, _)) in picked.iter().enumerate() {
            by_tenant.entry(p.tenant_id).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = by_tenant.into_values().collect();
        let asks: Vec<TenantAsk> =
            groups.iter().map(|members| ask(picked, members, |i| picked[i].1)).collect();
        let grants = self.limiter.acquire(&asks).await;
        let mut counts = vec![0u32; picked.len()];
        for ((members, grant), ask) in groups.iter().zip(&grants.tenants).zip(&asks) {
            let asked: u32 = ask.destinations.iter().map(|d| d.count).sum();
            let got: u32 = grant.granted.iter().sum();
            if got < asked && !grant.tenant_wait.is_zero() {
                self.throttled_tenants.insert(ask.tenant.uuid(), now + grant.tenant_wait);
            }
            for (k, &i) in members.iter().enumerate() {
                counts[i] = grant.granted[k];
                if counts[i] < picked[i].1 && !grant.destination_wait[k].is_zero() {
                    self.throttled_destinations
                        .insert(picked[i].0.id.uuid(), now + grant.destination_wait[k]);
                }
            }
        }
        Granted {
            items: picked.iter().map(|(p, _)| p.clone()).zip(counts).collect(),
            groups,
            shared: grants.shared,
        }
    }

    /// Claims the granted rows, gives unused tokens back, and starts the attempts.
    async fn claim_and_start(&mut self, granted: Granted) -> Result<bool, StoreError> {
        let requests: Vec<ClaimRequest> = granted
            .items
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| ClaimRequest {
                destination_id: p.id,
                tenant_id: p.tenant_id,
                count: *n,
                lease_ms: lease_for(self.config.lease_duration, p.timeout),
            })
            .collect();
        if requests.is_empty() {
            return Ok(false);
        }
        let lease_token = Uuid::now_v7();
        let claimed = claim_deliveries(&self.pool, &requests, lease_token).await?;
        metrics::counter!("relay_deliveries_claimed_total").increment(claimed.len() as u64);
        let mut got: HashMap<Uuid, u32> = HashMap::new();
        for c in &claimed {
            *got.entry(c.destination_id.uuid()).or_default() += 1;
        }
        let unused = |i: usize| {
            let (p, n) = &granted.items[i];
            n.saturating_sub(got.get(&p.id.uuid()).copied().unwrap_or(0))
        };
        if granted.shared && (0..granted.items.len()).any(|i| unused(i) > 0) {
            let refunds: Vec<TenantAsk> =
                granted.groups.iter().map(|members| ask(&granted.items, members, unused)).collect();
            self.limiter.give_back(&refunds, true).await;
        }
        let by_id: HashMap<Uuid, Arc<Prepared>> =
            granted.items.iter().map(|(p, _)| (p.id.uuid(), p.clone())).collect();
        let mut orphans = Vec::new();
        let started = !claimed.is_empty();
        for mut c in claimed {
            let Some(event) = c.event.take() else {
                orphans.push((c.id, c.lease_token));
                continue;
            };
            let dest = by_id[&c.destination_id.uuid()].clone();
            let permit = match self.ctx.in_flight.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                // Cannot happen (claims are sized by the free permits); the lease ends by itself.
                Err(_) => continue,
            };
            let slot = self.ctx.in_flight.begin(dest.id, c.id, c.lease_token, permit);
            self.tracker.spawn(run_attempt(self.ctx.clone(), dest, c, event, slot));
        }
        if !orphans.is_empty() {
            fail_leased(&self.pool, &orphans, "the event is no longer stored").await?;
        }
        Ok(started)
    }
}

/// The rows granted per destination, the tenant groups they were asked in, and whether the
/// grant came from the shared limiter.
struct Granted {
    items: Vec<(Arc<Prepared>, u32)>,
    groups: Vec<Vec<usize>>,
    shared: bool,
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

/// A lease long enough for the attempt and for its outcome to be recorded: counted from the
/// claim, it covers the timeout, the margin, and the wait in the (bounded) recorder queue.
fn lease_for(minimum: Duration, timeout: Duration) -> u32 {
    let lease = minimum.max(timeout + LEASE_MARGIN + RECORDING_ALLOWANCE);
    u32::try_from(lease.as_millis()).unwrap_or(u32::MAX)
}
