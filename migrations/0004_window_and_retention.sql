-- A redelivery or replay starts a fresh retry window: the window is counted from
-- window_started_at (NULL: from created_at, the ingest time).
ALTER TABLE deliveries ADD COLUMN window_started_at timestamptz;

-- Retention purges old rows per tenant by id (UUIDv7, time-ordered) on the (tenant_id, id)
-- indexes; its "no pending delivery" check on events uses deliveries_event.
