-- The whole data model of wap-relay. Every tenant-owned table carries tenant_id and every query
-- filters on it. Ids are UUIDv7 (time-ordered), so "newest first" keyset pagination is an index
-- scan on (tenant_id, id DESC). Secrets are stored sealed (XChaCha20-Poly1305 with the master key),
-- never in clear. The hot tables (events, deliveries, attempts) have no foreign keys: they are
-- written in batches and purged by retention, and every writer already holds the ids it links.

CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan       text NOT NULL CHECK (plan IN ('free', 'starter', 'growth', 'pro', 'enterprise')),
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- Operator overrides of plan limits, by the names of CONTRACT §6; absent = plan default.
    limits     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_page ON tenants (id DESC);

CREATE TABLE sources (
    id                         uuid PRIMARY KEY,
    tenant_id                  uuid NOT NULL REFERENCES tenants (id),
    name                       text NOT NULL,
    -- relay_core::verify::Verification as JSON: {"scheme": ..., "header": ..., ...}
    verification               jsonb NOT NULL,
    secret                     bytea,
    secret_hint                text,
    previous_secret            bytea,
    previous_secret_expires_at timestamptz,
    verify_token               bytea,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz
);
CREATE INDEX sources_tenant ON sources (tenant_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE destinations (
    id                                 uuid PRIMARY KEY,
    tenant_id                          uuid NOT NULL REFERENCES tenants (id),
    url                                text NOT NULL,
    description                        text,
    source_ids                         uuid[],
    event_types                        text[] NOT NULL DEFAULT '{*}',
    device_ids                         text[],
    headers                            jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled                            boolean NOT NULL DEFAULT true,
    disabled_reason                    text,
    disabled_at                        timestamptz,
    timeout_ms                         integer NOT NULL DEFAULT 10000 CHECK (timeout_ms BETWEEN 1 AND 30000),
    rate_limit_per_second              integer CHECK (rate_limit_per_second > 0),
    max_in_flight                      integer NOT NULL DEFAULT 16 CHECK (max_in_flight > 0),
    initial_delay_ms                   bigint NOT NULL DEFAULT 5000 CHECK (initial_delay_ms > 0),
    max_delay_ms                       bigint NOT NULL DEFAULT 3600000 CHECK (max_delay_ms > 0),
    window_seconds                     integer NOT NULL DEFAULT 86400 CHECK (window_seconds > 0),
    signing_secret                     bytea NOT NULL,
    previous_signing_secret            bytea,
    previous_signing_secret_expires_at timestamptz,
    -- The first failed attempt since the last success: the health check disables a
    -- destination whose failing_since is older than the configured period.
    failing_since                      timestamptz,
    created_at                         timestamptz NOT NULL DEFAULT now(),
    updated_at                         timestamptz NOT NULL DEFAULT now(),
    deleted_at                         timestamptz
);
CREATE INDEX destinations_tenant ON destinations (tenant_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE events (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    source_id    uuid NOT NULL,
    wap_event_id text NOT NULL,
    type         text NOT NULL,
    device_id    text,
    "timestamp"  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- The body exactly as received: it is what every destination gets, byte for byte.
    body         bytea NOT NULL,
    -- Dedupe is this constraint: exact under any concurrency, with or without Redis.
    CONSTRAINT events_dedupe UNIQUE (source_id, wap_event_id)
);
CREATE INDEX events_tenant ON events (tenant_id, id DESC);

CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    event_id         uuid NOT NULL,
    destination_id   uuid NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    -- When the next attempt is due. A claim moves it to the end of the lease, so a delivery whose
    -- worker died becomes due again by itself; NULL once the delivery is no longer pending.
    next_attempt_at  timestamptz,
    -- What causes the next attempt: auto (ingest, retry), manual (redeliver) or replay.
    next_trigger     text NOT NULL DEFAULT 'auto' CHECK (next_trigger IN ('auto', 'manual', 'replay')),
    -- Set by each claim; an outcome is applied only by the holder of the current lease.
    lease_token      uuid,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_tenant_due ON deliveries (tenant_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, id DESC);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_destination ON deliveries (destination_id, id DESC);

CREATE TABLE attempts (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    delivery_id      uuid NOT NULL,
    destination_id   uuid NOT NULL,
    number           integer NOT NULL,
    trigger          text NOT NULL CHECK (trigger IN ('auto', 'manual', 'replay')),
    started_at       timestamptz NOT NULL,
    duration_ms      integer NOT NULL,
    url              text NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('success', 'http_error', 'timeout', 'connect_error', 'tls_error', 'blocked')),
    status_code      integer,
    response_headers jsonb,
    response_body    text,
    error            text,
    next_attempt_at  timestamptz
);
CREATE INDEX attempts_tenant ON attempts (tenant_id, id DESC);
CREATE INDEX attempts_destination ON attempts (tenant_id, destination_id, id DESC);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id DESC);

CREATE TABLE rejections (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    source_id   uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- The problem code that was answered (invalid_signature, invalid_event, ...).
    reason      text NOT NULL,
    status      integer NOT NULL,
    detail      text,
    -- Request headers without credentials.
    headers     jsonb NOT NULL,
    -- The first 4 KiB of the body, and the body's full length.
    body        bytea NOT NULL,
    body_bytes  integer NOT NULL
);
CREATE INDEX rejections_tenant ON rejections (tenant_id, id DESC);
