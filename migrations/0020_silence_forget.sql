-- Silence alerts forget a key silent for a week (relay_store::silence::FORGET_SILENT_AFTER): the
-- scan finds such keys by this index, oldest silence first, in batches, so the table stays
-- bounded by the keys seen recently and the sweep costs the keys it forgets.
CREATE INDEX silence_watch_silent ON silence_watch (silent_since) WHERE silent_since IS NOT NULL;
