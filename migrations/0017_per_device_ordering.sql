-- Per-device ordering (CONTRACT §7). A destination with `ordering = 'per_device'` gets its
-- deliveries one at a time per deviceId, in acceptance order.
--
-- delivery_queue.device_key is set when a delivery is queued, and only when its destination
-- orders per device and its event has a deviceId (relay_core::vocab::DeliveryOrdering::device_key);
-- every other row keeps NULL and is claimed exactly as before. Acceptance order is the order of
-- delivery ids (UUIDv7, minted in order when ingest stores the event). A keyed row is claimable
-- only while it is its device's head: no row of the same destination and device with a smaller
-- delivery id is queued, and no other row of that device holds a live lease
-- (relay_store::dispatch::HEAD_OF_DEVICE). The head stays queued while leased or retrying, so it
-- holds the later ones back until it succeeds or fails; a lease that ends just makes it due again.
ALTER TABLE destinations
    ADD COLUMN ordering text NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'per_device'));

ALTER TABLE delivery_queue ADD COLUMN device_key text;

-- The head test: is there a queued row of this device with a smaller id? One probe. Only keyed
-- rows are in it, so destinations without ordering write nothing to it.
CREATE INDEX delivery_queue_device ON delivery_queue (destination_id, device_key, delivery_id)
    WHERE device_key IS NOT NULL;
-- And is another row of this device in flight? Holds only keyed rows with a lease (a handful).
CREATE INDEX delivery_queue_device_leased ON delivery_queue (destination_id, device_key)
    WHERE device_key IS NOT NULL AND lease_token IS NOT NULL;
