-- The hot queue of pending work is separated from the delivery log (CONTRACT §4 durability with
-- fewer writes per delivery).
--
-- delivery_queue holds exactly the deliveries whose status is 'pending' (the invariant every
-- writer keeps: a delivery is pending if and only if it has a queue row, changed in the same
-- statement). It carries what a claim needs (schedule, lease, trigger, retry window) and is small
-- (only pending work), so the claim's index stays in memory; a delivery leaves it when it
-- succeeds or fails. An ingest process that also dispatches inserts its fresh rows already leased
-- to itself (due_at = end of the lease), so their first attempt needs no claim; a crash leaves
-- them to be claimed by anyone once the lease ends.
--
-- deliveries becomes the log: its indexes cover only columns that never change (tenant, id,
-- event, destination), so recording an outcome is a HOT update (no index writes) on a page kept
-- with room for it (fillfactor). The primary keys of the three history tables become
-- (tenant_id, id): every lookup carries the tenant, and newest-first pages scan the same index
-- backwards, so the separate (tenant_id, id DESC) indexes go. Lookups of events by WAPing's
-- eventId go through the dedupe constraint with the tenant's source ids.
--
-- On a large existing database this migration rebuilds three primary keys: run it in a
-- maintenance window (or build the new indexes CONCURRENTLY beforehand).

CREATE TABLE delivery_queue (
    tenant_id              uuid NOT NULL,
    delivery_id            uuid NOT NULL,
    destination_id         uuid NOT NULL,
    event_id               uuid NOT NULL,
    -- When the next attempt is due; while leased, when the lease ends.
    due_at                 timestamptz NOT NULL,
    -- Set by each claim (or by ingest for its own fresh rows); an outcome is applied only by the
    -- holder of the current lease.
    lease_token            uuid,
    "trigger"              text NOT NULL DEFAULT 'auto' CHECK ("trigger" IN ('auto', 'manual', 'replay')),
    -- Attempts started (claims made) so far: the next attempt's X-Relay-Attempt is started + 1.
    started                integer NOT NULL DEFAULT 0,
    -- The retry window and the backoff count from here (ingest, or the last redelivery/replay).
    window_started_at      timestamptz NOT NULL,
    attempts_before_window integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, delivery_id)
);
-- The claim: a destination's due rows, oldest due first; also the loose scan that finds the
-- destinations with pending work.
CREATE INDEX delivery_queue_due ON delivery_queue (destination_id, due_at);
-- Its rows come and go all the time: where autovacuum runs, vacuum it after a fixed number of
-- dead rows rather than a fraction of a table that is mostly dead rows (the dispatchers also
-- vacuum it themselves, every few seconds, for servers where autovacuum is off or behind).
ALTER TABLE delivery_queue SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0);

INSERT INTO delivery_queue (tenant_id, delivery_id, destination_id, event_id, due_at, lease_token,
                            "trigger", started, window_started_at, attempts_before_window)
SELECT tenant_id, id, destination_id, event_id, COALESCE(next_attempt_at, now()), lease_token,
       next_trigger, attempts + (lease_token IS NOT NULL)::int, COALESCE(window_started_at, created_at),
       attempts_before_window
FROM deliveries WHERE status = 'pending';

-- Attempts started, as the queue row counted them when the delivery left the queue: a delivery
-- queued again (redelivery, replay) goes on from the larger of this and `attempts`, so an
-- X-Relay-Attempt number is never sent twice, even when an attempt's outcome was lost.
ALTER TABLE deliveries ADD COLUMN attempts_started integer NOT NULL DEFAULT 0;

DROP INDEX IF EXISTS deliveries_destination_due;
DROP INDEX IF EXISTS deliveries_tenant_pending;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey, ADD PRIMARY KEY (tenant_id, id);
DROP INDEX IF EXISTS deliveries_tenant;
ALTER TABLE deliveries DROP COLUMN lease_token, DROP COLUMN window_started_at,
    DROP COLUMN attempts_before_window;
ALTER TABLE deliveries SET (fillfactor = 80);

ALTER TABLE events DROP CONSTRAINT events_pkey, ADD PRIMARY KEY (tenant_id, id);
DROP INDEX IF EXISTS events_tenant;
DROP INDEX IF EXISTS events_tenant_wap_event;

ALTER TABLE attempts DROP CONSTRAINT attempts_pkey, ADD PRIMARY KEY (tenant_id, id);
DROP INDEX IF EXISTS attempts_tenant;

-- Newest-first pages are backward scans of ascending (tenant_id, ..., id) indexes (a primary key
-- cannot be descending), so the other per-tenant list indexes become ascending too.
DROP INDEX IF EXISTS attempts_destination;
CREATE INDEX attempts_destination ON attempts (tenant_id, destination_id, id);
DROP INDEX IF EXISTS rejections_tenant;
CREATE INDEX rejections_tenant ON rejections (tenant_id, id);
-- Not partial: events are found by WAPing's eventId through all of a tenant's sources, deleted
-- ones included.
DROP INDEX IF EXISTS sources_tenant;
CREATE INDEX sources_tenant ON sources (tenant_id, id);
DROP INDEX IF EXISTS destinations_tenant;
CREATE INDEX destinations_tenant ON destinations (tenant_id, id) WHERE deleted_at IS NULL;

-- Destinations are announced like sources and tenants (as 'destination:<tenant>:<id>', creation
-- included), so processes can cache them: the ingest fan-out and the dispatcher drop a cached
-- destination as soon as it changes anywhere in the fleet.
CREATE FUNCTION announce_destination_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row destinations%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN row := OLD; ELSE row := NEW; END IF;
    PERFORM pg_notify('wap_relay_config', 'destination:' || row.tenant_id::text || ':' || row.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER destinations_announce AFTER INSERT OR UPDATE OR DELETE ON destinations
    FOR EACH ROW EXECUTE FUNCTION announce_destination_change();
