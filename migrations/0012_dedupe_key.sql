-- Dedupe key per source (CONTRACT §7): a source may name JSON pointers whose values identify an
-- event (providers that resend one message under new eventIds). Such an event also gets a
-- `dedupe_id` (`key:` + the values), unique per source like the eventId; an event is a
-- duplicate when either identity was seen. Only events with a dedupe id are in the new index,
-- so sources without a key pay nothing more per insert.
ALTER TABLE sources ADD COLUMN dedupe_key text[];
ALTER TABLE events ADD COLUMN dedupe_id text;
CREATE UNIQUE INDEX events_dedupe_key ON events (source_id, dedupe_id) WHERE dedupe_id IS NOT NULL;
