//! One dispatch round over the queue: find the destinations with due work, share the free
//! capacity fairly (counting the slots each tenant already holds, see `crate::share`), take
//! limiter tokens, claim exactly that many rows per destination, start
//! their attempts. Rounds serve retries, deliveries queued by processes without a dispatcher (or
//! beyond what this process's lane took), redeliveries, replays and rows whose lease ended.
//!
//! Invariant: rows are claimed only for granted tokens, free slots and room in the recorder's
//! backlog, so a claimed row's attempt starts at once and its outcome is recorded within its
//! lease; tokens left unused because another process claimed the rows first are given back;
//! tenants and destinations at their limit are skipped by the next queries until their next
//! attempt conforms.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use relay_core::TenantId;
use relay_store::StoreError;
use relay_store::dispatch::{
    ClaimRequest, DueDestination, Release, claim_deliveries, fail_leased, list_due_destinations,
};
use tokio::time::Instant;
use uuid::Uuid;

use crate::engine::Engine;
use crate::prepare::Prepared;
use crate::share::share;
use crate::shared::Granted;

impl Engine {
    /// Returns whether it is worth running another round at once (it claimed something).
    pub(crate) async fn round(&mut self) -> Result<bool, StoreError> {
        let now = Instant::now();
        let shared = self.shared.clone();
        shared.throttled().prune(now);
        self.capacity_bound = false;
        // Recording behind counts like a lack of slots: claiming more would only queue outcomes
        // that may outlive their leases.
        let ctx = &shared.ctx;
        let free = ctx
            .in_flight
            .permits
            .available_permits()
            .min(shared.config.batch_size.max(1) as usize)
            .min(ctx.records.room()) as u32;
        if free == 0 {
            self.capacity_bound = true;
            return Ok(false);
        }
        let full = ctx.in_flight.full(|id| self.max_in_flight.get(&id.uuid()).copied());
        self.capacity_bound = !full.is_empty();
        let at_cap = ctx.in_flight.tenants_at_cap();
        self.capacity_bound |= !at_cap.is_empty();
        let (skip_destinations, skip_tenants) = {
            let t = shared.throttled();
            let d: Vec<Uuid> =
                t.destinations.keys().copied().chain(full.iter().map(|id| id.uuid())).collect();
            let tenants = t.tenants.keys().copied().chain(at_cap.iter().map(|t| t.uuid()));
            (d, tenants.collect::<Vec<Uuid>>())
        };
        let ticket = shared.destinations.ticket();
        let due = list_due_destinations(&shared.pool, free, &skip_destinations, &skip_tenants).await?;
        if due.is_empty() {
            return Ok(false);
        }
        let ready = self.prepare_all(due, ticket, now);
        let wants: Vec<(TenantId, u32)> = ready.iter().map(|(p, want)| (p.tenant_id, *want)).collect();
        let in_flight = &ctx.in_flight;
        let shares = share(free, &wants, |t| in_flight.held(t), |t| in_flight.tenant_room(t), self.rotation);
        self.rotation = self.rotation.wrapping_add(1);
        let total_want: u32 = wants.iter().map(|(_, w)| w).sum();
        if total_want > free {
            self.capacity_bound = true;
        }
        let picked: Vec<(Arc<Prepared>, u32)> =
            ready.into_iter().zip(shares).filter(|(_, s)| *s > 0).map(|((p, _), s)| (p, s)).collect();
        let granted = shared.take_tokens(&picked, now).await;
        self.claim_and_start(granted).await
    }

    /// Prepares the due destinations and how many attempts each could start now.
    fn prepare_all(
        &mut self,
        due: Vec<DueDestination>,
        ticket: relay_store::watched::Ticket,
        now: Instant,
    ) -> Vec<(Arc<Prepared>, u32)> {
        let mut ready = Vec::with_capacity(due.len());
        for d in due {
            let Some(p) = self.shared.prepare(&d, ticket, now) else { continue };
            self.max_in_flight.insert(d.destination.id, p.max_in_flight);
            let room = self.shared.ctx.in_flight.room(p.id, p.max_in_flight, d.due);
            let want = d.due.min(room);
            self.capacity_bound |= want < d.due;
            if want > 0 {
                ready.push((p, want));
            }
        }
        ready
    }

    /// Claims the granted rows, gives unused tokens back, and starts the attempts.
    async fn claim_and_start(&mut self, granted: Granted) -> Result<bool, StoreError> {
        let shared = self.shared.clone();
        let requests: Vec<ClaimRequest> = granted
            .items
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| ClaimRequest {
                destination_id: p.id,
                count: *n,
                lease_ms: shared.lease_for(p.timeout, Duration::ZERO),
            })
            .collect();
        if requests.is_empty() {
            return Ok(false);
        }
        // The slots first: a claimed row must never wait for one (its lease would run out).
        let wanted: u32 = requests.iter().map(|r| r.count).sum();
        let Some(mut permits) = shared.permits(wanted as usize) else {
            shared.give_back(&granted, |i| granted.items[i].1).await;
            return Ok(false);
        };
        let requests = fit(requests, permits.num_permits() as u32);
        let lease_token = shared.ctx.in_flight.fleet.lease_token();
        let claimed = claim_deliveries(&shared.pool, &requests, lease_token).await?;
        metrics::counter!("relay_deliveries_claimed_total").increment(claimed.len() as u64);
        let mut got: HashMap<Uuid, u32> = HashMap::new();
        for c in &claimed {
            *got.entry(c.destination_id.uuid()).or_default() += 1;
        }
        let unused = |i: usize| {
            let (p, n) = &granted.items[i];
            n.saturating_sub(got.get(&p.id.uuid()).copied().unwrap_or(0))
        };
        shared.give_back(&granted, unused).await;
        let by_id: HashMap<Uuid, Arc<Prepared>> =
            granted.items.iter().map(|(p, _)| (p.id.uuid(), p.clone())).collect();
        let mut orphans = Vec::new();
        let started = !claimed.is_empty();
        for mut c in claimed {
            let Some(event) = c.event.take() else {
                orphans.push(Release {
                    tenant_id: c.tenant_id,
                    id: c.id,
                    lease_token: c.lease_token,
                    at: None,
                    attempted: false,
                });
                continue;
            };
            let dest = by_id[&c.destination_id.uuid()].clone();
            let permit = permits.split(1).expect("one permit per claimed row");
            shared.start(dest, c, event, permit);
        }
        if !orphans.is_empty() {
            fail_leased(&shared.pool, &orphans, "the event is no longer stored").await?;
        }
        Ok(started)
    }
}

/// Trims the claim requests to `slots` rows in all (when fewer permits were free than rows
/// granted; the tokens of the rest are given back with the other unused ones).
fn fit(mut requests: Vec<ClaimRequest>, slots: u32) -> Vec<ClaimRequest> {
    let mut left = slots;
    for r in &mut requests {
        r.count = r.count.min(left);
        left -= r.count;
    }
    requests.retain(|r| r.count > 0);
    requests
}
