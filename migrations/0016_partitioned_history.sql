-- History at scale (CONTRACT §9): events, deliveries and attempts are partitioned, so retention
-- drops whole partitions instead of deleting rows one by one.
--
-- Two levels. First by LIST on keep_days, the retention in days of the tenant when the row was
-- written (plans keep history 3, 7, 30 or 90 days: one class each, plus overrides); then each
-- class by RANGE on id, a UUIDv7 whose first 48 bits are its creation time, in slices of
-- wap_relay_partition_width(keep_days) days. A slice [lo, hi) of class k holds nothing younger
-- than k days once hi + k days have passed: the relay detaches it CONCURRENTLY and drops it
-- (relay_store::partitions). Lookups by id still prune to one slice per class.
--
-- keep_days 0 is one plain table purged by rows, as before this migration: the history already
-- stored (it is moved here), the rows of tenants that keep everything (retention 0), and the
-- event and delivery rows of pending deliveries rescued from a slice about to be dropped, so a
-- pending delivery and its event outlive their slice.
--
-- Dedupe needs a unique index across all history, which a partitioned table cannot have (its
-- unique indexes must contain the partition key): it moves to event_keys, one row per identity
-- of an event, deleted by (keep_days, event_id) when the event's slice is dropped.
--
-- On a large database this migration copies the three tables: run it in a maintenance window.

CREATE TABLE event_keys (
    source_id uuid NOT NULL,
    -- 'e:' || eventId, or the dedupe id ('key:' + the dedupe key's values).
    key       text NOT NULL,
    event_id  uuid NOT NULL,
    keep_days smallint NOT NULL,
    PRIMARY KEY (source_id, key)
);
CREATE INDEX event_keys_expiry ON event_keys (keep_days, event_id);
INSERT INTO event_keys (source_id, key, event_id, keep_days)
    SELECT source_id, 'e:' || wap_event_id, id, 0 FROM events
    UNION ALL SELECT source_id, dedupe_id, id, 0 FROM events WHERE dedupe_id IS NOT NULL;

-- The pending delivery's class, so its attempts are written in the same class.
ALTER TABLE delivery_queue ADD COLUMN keep_days smallint NOT NULL DEFAULT 0;

CREATE TABLE events_p (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    keep_days smallint NOT NULL DEFAULT 0) PARTITION BY LIST (keep_days);
CREATE TABLE deliveries_p (LIKE deliveries INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    keep_days smallint NOT NULL DEFAULT 0) PARTITION BY LIST (keep_days);
CREATE TABLE attempts_p (LIKE attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    keep_days smallint NOT NULL DEFAULT 0) PARTITION BY LIST (keep_days);
CREATE TABLE events_k0 PARTITION OF events_p FOR VALUES IN (0);
CREATE TABLE deliveries_k0 PARTITION OF deliveries_p FOR VALUES IN (0) WITH (fillfactor = 80);
CREATE TABLE attempts_k0 PARTITION OF attempts_p FOR VALUES IN (0);
INSERT INTO events_p SELECT *, 0 FROM events;
INSERT INTO deliveries_p SELECT *, 0 FROM deliveries;
INSERT INTO attempts_p SELECT *, 0 FROM attempts;
DROP TABLE events, deliveries, attempts;
ALTER TABLE events_p RENAME TO events;
ALTER TABLE deliveries_p RENAME TO deliveries;
ALTER TABLE attempts_p RENAME TO attempts;

-- The same indexes as before (0009), the partition key added to the primary keys.
ALTER TABLE events ADD PRIMARY KEY (tenant_id, id, keep_days);
ALTER TABLE deliveries ADD PRIMARY KEY (tenant_id, id, keep_days);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_destination ON deliveries (destination_id, id DESC);
ALTER TABLE attempts ADD PRIMARY KEY (tenant_id, id, keep_days);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id DESC);
CREATE INDEX attempts_destination ON attempts (tenant_id, destination_id, id);

-- The days one slice of class `keep` covers: a tenth of the retention, 1 to 7 days, so a row
-- outlives its retention by at most that and a class has about a dozen slices.
CREATE FUNCTION wap_relay_partition_width(keep integer) RETURNS integer
    LANGUAGE sql IMMUTABLE AS $$ SELECT least(greatest(keep / 10, 1), 7) $$;

-- The smallest UUIDv7 minted at `t`.
CREATE FUNCTION wap_relay_uuid_at(t timestamptz) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0')
            || '00000000000000000000')::uuid $$;

-- Creates class `keep` if missing and its slices covering [since, upto], for the three tables;
-- returns how many tables it created. Every table is created apart and then attached, which
-- takes a SHARE UPDATE EXCLUSIVE lock on the parent: ingest goes on meanwhile. Callers from the
-- whole fleet are serialised by an advisory lock.
CREATE FUNCTION wap_relay_ensure_partitions(keep integer, since timestamptz, upto timestamptz)
    RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    width integer := wap_relay_partition_width(keep);
    parent text;
    class text;
    slice text;
    n bigint;
    lo timestamptz;
    created integer := 0;
BEGIN
    IF keep < 1 OR keep > 32767 THEN
        RAISE EXCEPTION 'keep_days % has no partitions (1 to 32767)', keep;
    END IF;
    PERFORM pg_advisory_xact_lock(8604475916213510772);  -- "wap-part"
    FOREACH parent IN ARRAY ARRAY['events', 'deliveries', 'attempts'] LOOP
        class := parent || '_k' || keep;
        IF to_regclass(class) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                           'PARTITION BY RANGE (id)', class, parent);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%s)', parent, class, keep);
            created := created + 1;
        END IF;
        n := floor(extract(epoch FROM since) / 86400 / width);
        LOOP
            lo := to_timestamp(n * width * 86400);
            EXIT WHEN lo > upto;
            slice := class || '_' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
            IF to_regclass(slice) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               slice, class);
                IF parent = 'deliveries' THEN
                    EXECUTE format('ALTER TABLE %I SET (fillfactor = 80)', slice);
                END IF;
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', class,
                               slice, wap_relay_uuid_at(lo), wap_relay_uuid_at(lo + width * interval '1 day'));
                created := created + 1;
            END IF;
            n := n + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

-- The slices whose every row is past its class's retention by `margin`: what the relay drops.
-- `state` is `attached`, `pending` (a DETACH ... CONCURRENTLY was interrupted) or `detached`
-- (the drop was interrupted after the detach).
CREATE FUNCTION wap_relay_expired_partitions(margin interval)
    RETURNS TABLE (parent text, slice text, keep integer, lo uuid, hi uuid, state text)
    LANGUAGE sql STABLE AS $$
    SELECT s.parent, c.relname::text, s.keep, wap_relay_uuid_at(s.lo),
           wap_relay_uuid_at(s.lo + wap_relay_partition_width(s.keep) * interval '1 day'),
           CASE WHEN NOT c.relispartition THEN 'detached'
                WHEN (SELECT i.inhdetachpending FROM pg_inherits i WHERE i.inhrelid = c.oid) THEN 'pending'
                ELSE 'attached' END
    FROM pg_class c,
    LATERAL (SELECT substring(c.relname FROM '^([a-z]+_k[0-9]+)_') AS parent,
                    substring(c.relname FROM '_k([0-9]+)_')::integer AS keep,
                    to_date(right(c.relname, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC' AS lo) s
    WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
      AND c.relname ~ '^(events|deliveries|attempts)_k[0-9]+_[0-9]{8}$'
      AND s.lo + (wap_relay_partition_width(s.keep) + s.keep) * interval '1 day' + margin < now()
    ORDER BY s.lo, s.keep, s.parent
$$;
