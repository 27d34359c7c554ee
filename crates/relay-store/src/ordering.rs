//! Per-device ordering (CONTRACT §7) in SQL: which queued rows take part, and which of them may be
//! claimed. The Rust side of the first rule is `relay_core::vocab::DeliveryOrdering::device_key`;
//! this module is its only SQL form, and the only home of the claim's head rule.
//!
//! A queued row with a `device_key` is ordered: of the rows of one destination and device, only
//! the one with the smallest delivery id (acceptance order: ids are UUIDv7 minted in order when
//! ingest stores the event) may be attempted, and only while no other row of that device holds a
//! live lease. The head stays queued while it is leased or waits for a retry, so the later rows
//! wait (`pending`) until it succeeds or fails; a lease that ends (a crashed process) just makes
//! the head due again. A delivery queued again (redelivery, replay) keeps its id, so it takes its
//! place by acceptance order: ahead of the device's later rows once the attempt in flight, if
//! any, is over. Rows without a key (destinations with `ordering = 'none'`, events without a
//! deviceId) are never held and never hold.
//!
//! Invariant: claims read other rows of the device only through the two partial indexes of
//! migration 0017, which hold keyed rows only, so unordered destinations pay nothing.

/// The claim condition on queue row `q`: not ordered, or the head of its device (see the module
/// docs). Evaluated against the claiming statement's snapshot, so of two rows of one device a
/// single claim can take at most the first.
pub(crate) const HEAD_OF_DEVICE: &str = "(q.device_key IS NULL OR ( \
     NOT EXISTS (SELECT 1 FROM delivery_queue o WHERE o.destination_id = q.destination_id \
       AND o.device_key = q.device_key AND o.delivery_id < q.delivery_id) \
     AND NOT EXISTS (SELECT 1 FROM delivery_queue o WHERE o.destination_id = q.destination_id \
       AND o.device_key = q.device_key AND o.lease_token IS NOT NULL AND o.due_at > now() \
       AND o.delivery_id <> q.delivery_id)))";

/// The device key of a delivery whose destination's ordering is `ordering` and whose event's
/// deviceId is `device` (two SQL expressions): the SQL form of `DeliveryOrdering::device_key`.
pub(crate) fn device_key_sql(ordering: &str, device: &str) -> String {
    format!("(CASE WHEN {ordering} = 'per_device' THEN {device} END)")
}

#[cfg(test)]
mod tests;
