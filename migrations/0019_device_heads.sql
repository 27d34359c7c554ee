-- Per-device ordering costs the claim work per held device, not per held delivery (CONTRACT §10).
--
-- Before: every keyed row of a device was due, and each claim and due count walked them all,
-- testing each for being its device's head (one failing device with 100,000 held deliveries made
-- every claim of the fleet take seconds). Now a keyed row that is not its device's head is
-- parked: due_at = 'infinity', so the claim index's range `due_at <= now()` never reaches it. A
-- device has one row with a finite due_at (its head), plus at most a few that raced (two
-- concurrent ingest transactions, a redelivered earlier delivery): the claim's head test
-- (relay_store::ordering::HEAD_OF_DEVICE) still guards the order among those.
--
-- Parking is decided when a row is queued (relay_store::ordering::due_or_parked), and undone for
-- the device's next row, in acceptance order, by the outcome statement that removes its head
-- (relay_store::ordering::promote_sql; a trigger did this for every DELETE and cost 0.08 ms of
-- Postgres CPU per event at 1,000 events/s). A head left parked otherwise (a rarer removal: an
-- event no longer stored, a window that ended while disabled; or a transaction racing the removal
-- of the row it waited for) is found by relay_store::ordering::repair_heads, which the
-- dispatchers run every 10 s.
UPDATE delivery_queue q SET due_at = 'infinity'
WHERE q.device_key IS NOT NULL AND q.lease_token IS NULL
  AND EXISTS (SELECT 1 FROM delivery_queue o WHERE o.destination_id = q.destination_id
              AND o.device_key = q.device_key AND o.delivery_id < q.delivery_id);
