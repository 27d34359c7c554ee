-- Operational events and silence alerts (CONTRACT §7).
--
-- relay_outbox: a state change that the relay reports as a `relay.*` event writes one row here in
-- the same statement (or transaction) as the change itself, so a change is reported exactly once
-- however many processes race for it: only the one whose update changed the row writes it. The
-- dispatchers turn the rows into events of the tenant's stream (stored with the nil source id,
-- "the relay itself", listed with source_id null) and their deliveries, deleting each row in the
-- transaction that stores its event (relay_store::outbox). Ids are the ids the event concerns;
-- `detail` holds the rest of its data.
CREATE TABLE relay_outbox (
    id             bigserial PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    type           text NOT NULL,
    destination_id uuid,
    delivery_id    uuid,
    event_id       uuid,
    source_id      uuid,
    device_id      text,
    detail         jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Whether the current failing streak is one the tenant was told of (a delivery became failed
-- during it, or the relay disabled the destination): only such a streak's end is reported as
-- `relay.destination.recovered`, so a retry that succeeds is not an event.
ALTER TABLE destinations ADD COLUMN streak_notable boolean NOT NULL DEFAULT false;

-- Silence alerts: off (null) or the seconds without events after which the source, and each
-- device seen on it, is reported silent.
ALTER TABLE sources ADD COLUMN silence_alert_seconds integer
    CHECK (silence_alert_seconds IS NULL OR silence_alert_seconds >= 60);

-- One row per source ('' as device_id) and per (source, deviceId) of a source with silence
-- alerts on: when an event was last seen (ingest writes it at most every few seconds per key),
-- and the moment it becomes silent (`deadline`, last_seen + the source's silence_alert_seconds).
-- One process at a time scans the index for deadlines passed (relay_store::silence).
CREATE TABLE silence_watch (
    source_id    uuid NOT NULL,
    device_id    text NOT NULL,
    tenant_id    uuid NOT NULL,
    last_seen    timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    silent_since timestamptz,
    PRIMARY KEY (source_id, device_id)
);
CREATE INDEX silence_watch_due ON silence_watch (deadline) WHERE silent_since IS NULL;

-- A destination's state changes are reported where they happen, whoever makes them (the
-- dispatcher's health check, the admin API, an operator's SQL): in this trigger, in the
-- transaction of the change, so each change is reported once. Disabling (not deleting) reports
-- relay.destination.disabled; re-enabling reports relay.destination.recovered (and starts the
-- destination afresh, as before); the end of a notable failing streak of an enabled destination
-- (it answered again) reports relay.destination.recovered too. `replay` asks the publisher to
-- queue the streak's failed deliveries again (replay on recovery) in the transaction that
-- publishes the event, which then carries how many.
CREATE OR REPLACE FUNCTION destinations_on_reenable() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    detail jsonb;
BEGIN
    IF NEW.enabled AND NOT OLD.enabled THEN
        kind := 'relay.destination.recovered';
        detail := jsonb_build_object('reason', 'enabled', 'since', COALESCE(OLD.failing_since, OLD.disabled_at),
                                     'replay', NEW.replay_on_recovery);
        NEW.failing_since := NULL;
        NEW.disabled_reason := NULL;
        NEW.disabled_at := NULL;
        PERFORM pg_notify('wap_relay_deliveries', '');
    ELSIF OLD.enabled AND NOT NEW.enabled AND NEW.deleted_at IS NULL THEN
        kind := 'relay.destination.disabled';
        detail := jsonb_build_object('reason', NEW.disabled_reason, 'failingSince', NEW.failing_since);
    ELSIF NEW.enabled AND OLD.failing_since IS NOT NULL AND NEW.failing_since IS NULL
          AND (OLD.streak_notable OR NEW.streak_notable) THEN
        kind := 'relay.destination.recovered';
        detail := jsonb_build_object('reason', 'answered', 'since', OLD.failing_since,
                                     'replay', NEW.replay_on_recovery);
    END IF;
    IF kind IS NOT NULL THEN
        INSERT INTO relay_outbox (tenant_id, type, destination_id, detail)
        VALUES (NEW.tenant_id, kind, NEW.id, detail);
        PERFORM pg_notify('wap_relay_outbox', '');
    END IF;
    IF NEW.failing_since IS NULL THEN
        NEW.streak_notable := false;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER destinations_reenable ON destinations;
CREATE TRIGGER destinations_reenable BEFORE UPDATE OF enabled, failing_since, streak_notable ON destinations
    FOR EACH ROW EXECUTE FUNCTION destinations_on_reenable();
