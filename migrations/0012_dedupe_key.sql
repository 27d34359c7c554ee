-- Dedupe key per source (CONTRACT §7): a source may name JSON pointers whose values identify an
-- event instead of its eventId (providers that resend one message under new eventIds). An
-- event's identity is its `dedupe_id` (from those pointers) or, without one, its eventId; the
-- unique index on that identity is the dedupe, exact under any concurrency as before.
ALTER TABLE sources ADD COLUMN dedupe_key text[];
ALTER TABLE events ADD COLUMN dedupe_id text;
CREATE UNIQUE INDEX events_dedupe_identity ON events (source_id, (coalesce(dedupe_id, wap_event_id)));
ALTER TABLE events DROP CONSTRAINT events_dedupe;
