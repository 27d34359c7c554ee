-- The dispatcher claims work per destination: it walks the destinations that have pending
-- deliveries (a loose index scan over this index), skips disabled or deleted ones without reading
-- their rows, and takes each destination's due rows oldest first. So a disabled destination's
-- deliveries simply wait, and flow again as soon as `enabled` is true again.
CREATE INDEX deliveries_destination_due ON deliveries (destination_id, next_attempt_at) WHERE status = 'pending';

-- Re-enabling a destination (however it is done) starts it afresh: its failure streak is
-- forgotten, so the health check does not disable it again at the first failed attempt, and the
-- dispatchers are woken so its waiting deliveries flow at once.
CREATE FUNCTION destinations_on_reenable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.enabled AND NOT OLD.enabled THEN
        NEW.failing_since := NULL;
        NEW.disabled_reason := NULL;
        NEW.disabled_at := NULL;
        PERFORM pg_notify('wap_relay_deliveries', '');
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER destinations_reenable BEFORE UPDATE OF enabled ON destinations
    FOR EACH ROW EXECUTE FUNCTION destinations_on_reenable();
