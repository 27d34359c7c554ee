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
-- the device's next row, in acceptance order, by this trigger when a keyed row leaves the queue
-- (success, failure, expiry, a deleted destination). A row parked by a transaction racing the
-- removal of the row it waited for is found by relay_store::ordering::repair_heads, which the
-- dispatchers run on their housekeeping cadence.
UPDATE delivery_queue q SET due_at = 'infinity'
WHERE q.device_key IS NOT NULL AND q.lease_token IS NULL
  AND EXISTS (SELECT 1 FROM delivery_queue o WHERE o.destination_id = q.destination_id
              AND o.device_key = q.device_key AND o.delivery_id < q.delivery_id);

-- One statement-level trigger: a DELETE of unordered rows pays one empty scan of its transition
-- table, and a DELETE of many rows of one device promotes once, not once per row.
CREATE FUNCTION wap_relay_promote_device_heads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE delivery_queue q SET due_at = now()
    FROM (SELECT DISTINCT destination_id, device_key FROM gone WHERE device_key IS NOT NULL) g
    WHERE q.destination_id = g.destination_id AND q.device_key = g.device_key
      AND q.due_at = 'infinity'
      AND q.delivery_id = (SELECT o.delivery_id FROM delivery_queue o
                           WHERE o.destination_id = g.destination_id AND o.device_key = g.device_key
                           ORDER BY o.delivery_id LIMIT 1);
    RETURN NULL;
END
$$;

CREATE TRIGGER delivery_queue_promote_heads AFTER DELETE ON delivery_queue
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION wap_relay_promote_device_heads();
