//! The hand-off of freshly stored deliveries from the ingest writer to the dispatcher of the same
//! process: the writer asks, before its write, which deliveries the local dispatcher will take,
//! queues those already leased to it, and after the commit hands them over with the event in
//! memory. Their first attempt then needs no claim and no read of the event: the queue row, with
//! its lease, stays the durable fallback (another process claims it once the lease ends).
//!
//! Invariant: every reservation ends in exactly one of [`Handoff::hand_over`] (stored) or
//! [`Handoff::cancel`] (not stored: a duplicate, or the write failed), so the dispatcher's counts
//! of what it was promised stay exact.
//!
//! The hand-off also carries backpressure the other way: before a request joins the write queue,
//! ingest waits briefly while the dispatcher has no room for that tenant's new deliveries, so a
//! sender that outruns delivery is slowed down (its deliveries still spill to the queue after the
//! wait; nothing is refused for it).

use bytes::Bytes;
use relay_core::{DeliveryId, DestinationId, EventId, TenantId};
use uuid::Uuid;

use crate::destinations::FanoutDestination;

/// A stored delivery whose first attempt is this process's.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub destination_id: DestinationId,
    pub wap_event_id: String,
    pub event_type: String,
    pub body: Bytes,
    pub max_in_flight: u32,
    pub timeout_ms: u32,
}

pub trait Handoff: Send + Sync {
    /// The lease token of every delivery queued for this process by the writer.
    fn lease_token(&self) -> Uuid;
    /// Reserves the first attempt of a new delivery of `tenant` to `destination`; the lease (ms)
    /// to queue it under, or `None` to leave it to the queue (due now, for any dispatcher).
    fn reserve(&self, tenant: TenantId, destination: &FanoutDestination) -> Option<u32>;
    /// The reserved deliveries are stored (committed): attempt them.
    fn hand_over(&self, fresh: Vec<Fresh>);
    /// These reservations were not stored.
    fn cancel(&self, reserved: &[(TenantId, DestinationId)]);
    /// Whether a new event of `tenant` fanning out to `destinations` would have all its first
    /// attempts taken now. Ingest waits a little (see [`Handoff::eased`]) while it would not:
    /// backpressure that keeps one tenant's accepted events from outrunning its deliveries,
    /// without holding back other tenants.
    fn has_room(&self, tenant: TenantId, destinations: &[&FanoutDestination]) -> bool;
    /// Signalled whenever reservations end (room may have been made).
    fn eased(&self) -> &tokio::sync::Notify;
}
