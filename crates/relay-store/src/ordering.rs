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
//! A keyed row that is not its device's head when it is queued is parked (`due_at` =
//! [`PARKED`], migration 0019): the claim's range on the due index never reaches it, so a device
//! with a million held deliveries costs a claim one row, not a million. When an outcome removes a
//! device's head, the same statement gives the device's next row (by id) `due_at = now()`
//! ([`promote_sql`]); [`repair_heads`] finds a head left parked any other way (a rarer removal, or
//! a race between queueing a row and removing the one it waited for) within one pass.
//!
//! Invariant: claims read other rows of the device only through the two partial indexes of
//! migration 0017, which hold keyed rows only, so unordered destinations pay nothing. A device's
//! smallest queued row is never parked for longer than a housekeeping pass.

/// The claim condition on queue row `q`: not ordered, or the head of its device (see the module
/// docs). Evaluated against the claiming statement's snapshot, so of two rows of one device a
/// single claim can take at most the first.
///
/// "No smaller id" is written as a comparison with the device's first id (`ORDER BY … LIMIT 1`,
/// which the planner reads as one probe of the device index) rather than `NOT EXISTS` of a
/// smaller one, which it may plan as a sequential scan when one device holds most of the queue.
pub(crate) const HEAD_OF_DEVICE: &str = "(q.device_key IS NULL OR ( \
     q.delivery_id <= (SELECT o.delivery_id FROM delivery_queue o \
       WHERE o.destination_id = q.destination_id AND o.device_key = q.device_key \
       ORDER BY o.delivery_id LIMIT 1) \
     AND NOT EXISTS (SELECT 1 FROM delivery_queue o WHERE o.destination_id = q.destination_id \
       AND o.device_key = q.device_key AND o.lease_token IS NOT NULL AND o.due_at > now() \
       AND o.delivery_id <> q.delivery_id)))";

/// The `due_at` of a parked row: after every real time, so `due_at <= now()` never holds.
pub(crate) const PARKED: &str = "'infinity'::timestamptz";

/// The `due_at` of a row being queued with device key `key` (SQL expressions naming its
/// destination, key and delivery id): `due` when it is unordered or its device's head, else
/// [`PARKED`]. `earlier_in_set` says whether the same statement queues an earlier row of the same
/// device (a batch); rows already queued are looked up through the device index.
pub(crate) fn due_or_parked(
    due: &str,
    destination: &str,
    key: &str,
    id: &str,
    earlier_in_set: &str,
) -> String {
    format!(
        "(CASE WHEN {key} IS NULL THEN {due} \
           WHEN {earlier_in_set} OR (SELECT o.delivery_id FROM delivery_queue o \
             WHERE o.destination_id = {destination} AND o.device_key = {key} \
             ORDER BY o.delivery_id LIMIT 1) < {id} \
           THEN {PARKED} ELSE {due} END)"
    )
}

/// A CTE body giving the next row of each device whose head the same statement removes its turn:
/// `{gone}` names `(destination_id, device_key, delivery_id)` rows removed by the statement
/// (deleted in a sibling CTE, so still visible to this one's snapshot and excluded by id).
/// Only parked rows are touched, so it never meets a row the statement leases or retries.
pub(crate) fn promote_sql(gone: &str) -> String {
    format!(
        "UPDATE delivery_queue q SET due_at = now() \
         FROM (SELECT DISTINCT destination_id, device_key FROM {gone} WHERE device_key IS NOT NULL) g \
         WHERE q.destination_id = g.destination_id AND q.device_key = g.device_key AND q.due_at = {PARKED} \
           AND q.delivery_id = (SELECT o.delivery_id FROM delivery_queue o \
             WHERE o.destination_id = g.destination_id AND o.device_key = g.device_key \
               AND o.delivery_id NOT IN (SELECT delivery_id FROM {gone}) \
             ORDER BY o.delivery_id LIMIT 1) \
         RETURNING 1"
    )
}

/// Gives every device whose smallest queued row is parked (a queueing transaction raced the
/// removal of the row it waited for) its head back, due now; looks at up to `limit` devices after
/// `after` (a `(destination, device key)` cursor, `None` from the start). Returns the heads
/// repaired and the cursor for the next pass (`None` once the last device was seen). Costs one
/// index probe per device, whatever its number of held rows.
pub async fn repair_heads(
    db: impl sqlx::PgExecutor<'_>,
    after: Option<&(uuid::Uuid, String)>,
    limit: i64,
) -> crate::error::Result<(u64, Option<(uuid::Uuid, String)>)> {
    let (destination, key) = after.cloned().map_or((None, None), |(d, k)| (Some(d), Some(k)));
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE dev(n, destination_id, device_key, delivery_id, due_at) AS ( \
           (SELECT 1, destination_id, device_key, delivery_id, due_at FROM delivery_queue \
            WHERE device_key IS NOT NULL AND ($1::uuid IS NULL OR (destination_id, device_key) > ($1, $2)) \
            ORDER BY destination_id, device_key, delivery_id LIMIT 1) \
           UNION ALL \
           SELECT dev.n + 1, h.* FROM dev CROSS JOIN LATERAL ( \
             SELECT destination_id, device_key, delivery_id, due_at FROM delivery_queue q \
             WHERE q.device_key IS NOT NULL \
               AND (q.destination_id, q.device_key) > (dev.destination_id, dev.device_key) \
             ORDER BY destination_id, device_key, delivery_id LIMIT 1) h \
           WHERE dev.n < $3 \
         ), fixed AS ( \
           UPDATE delivery_queue q SET due_at = now() FROM dev \
           WHERE dev.due_at = {PARKED} AND q.destination_id = dev.destination_id \
             AND q.device_key = dev.device_key AND q.delivery_id = dev.delivery_id AND q.due_at = {PARKED} \
           RETURNING 1 \
         ) \
         SELECT (SELECT count(*) FROM fixed), (SELECT count(*) FROM dev), \
           (SELECT destination_id FROM dev ORDER BY n DESC LIMIT 1), \
           (SELECT device_key FROM dev ORDER BY n DESC LIMIT 1)"
    ));
    let (fixed, seen, last_destination, last_key): (i64, i64, Option<uuid::Uuid>, Option<String>) =
        sqlx::query_as(sql).bind(destination).bind(key).bind(limit).fetch_one(db).await?;
    let next = match (last_destination, last_key) {
        (Some(d), Some(k)) if seen >= limit => Some((d, k)),
        _ => None,
    };
    Ok((u64::try_from(fixed).unwrap_or(0), next))
}

/// The device key of a delivery whose destination's ordering is `ordering` and whose event's
/// deviceId is `device` (two SQL expressions): the SQL form of `DeliveryOrdering::device_key`.
pub(crate) fn device_key_sql(ordering: &str, device: &str) -> String {
    format!("(CASE WHEN {ordering} = 'per_device' THEN {device} END)")
}

#[cfg(test)]
mod tests;
