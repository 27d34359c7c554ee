//! Backpressure from delivery to ingest, per tenant. Before an event joins the write queue, it
//! waits (at most [`MAX_WAIT`]) while this process's dispatcher has no room for the event's
//! deliveries, so a sender that outruns delivery is slowed down to the pace of its deliveries; on
//! a machine shared by ingest and delivery, accepted events then do not outrun the deliveries
//! made. After the wait the event is stored anyway (its deliveries queued for any dispatcher).
//! While [`MAX_WAITING`] events of the tenant already wait, a new one is refused at once (503
//! with `Retry-After`): that tenant is sending faster than the relay delivers for it, and a
//! standing queue of waiting requests would only add latency. Other tenants are not held back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use relay_core::TenantId;
use relay_store::destinations::FanoutDestination;

use crate::IngressState;

/// The longest an event waits for room.
const MAX_WAIT: Duration = Duration::from_millis(75);
/// Events of one tenant that may wait at once.
const MAX_WAITING: u32 = 32;

/// The tenant sends faster than the relay delivers for it.
pub(crate) struct Outpaced;

/// How many events of each tenant are waiting.
#[derive(Default)]
pub(crate) struct Waiting(Mutex<HashMap<TenantId, u32>>);

/// One waiting event's place; given back when dropped (however the request ends).
struct Place<'a>(&'a Waiting, TenantId);

impl Waiting {
    /// Whether as many events of `tenant` as may wait are waiting.
    pub fn is_full(&self, tenant: TenantId) -> bool {
        let waiting = self.0.lock().unwrap_or_else(|p| p.into_inner());
        waiting.get(&tenant).is_some_and(|n| *n >= MAX_WAITING)
    }

    fn enter(&self, tenant: TenantId) -> Option<Place<'_>> {
        let mut waiting = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = waiting.entry(tenant).or_default();
        if *n >= MAX_WAITING {
            return None;
        }
        *n += 1;
        Some(Place(self, tenant))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut waiting = self.0.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = waiting.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(&self.1);
            }
        }
    }
}

/// Waits for room for an event of `tenant` fanning out to `matching` (see the module docs).
pub(crate) async fn wait_for_room(
    state: &IngressState,
    tenant: TenantId,
    matching: &[&FanoutDestination],
) -> Result<(), Outpaced> {
    let inner = &state.inner;
    let Some(handoff) = &inner.handoff else { return Ok(()) };
    if matching.is_empty() || handoff.has_room(tenant, matching) {
        return Ok(());
    }
    let _place = inner.waiting.enter(tenant).ok_or(Outpaced)?;
    metrics::counter!("relay_ingest_backpressure_waits_total").increment(1);
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    loop {
        let eased = handoff.eased().notified();
        tokio::pin!(eased);
        eased.as_mut().enable();
        if handoff.has_room(tenant, matching) || tokio::time::timeout_at(deadline, eased).await.is_err() {
            return Ok(());
        }
    }
}
