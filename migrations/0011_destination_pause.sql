-- Pause (CONTRACT §7): a paused destination's deliveries collect in the queue, none is
-- attempted, and their retry windows restart when it is resumed. Unlike `enabled`, pausing is
-- only ever the tenant's choice and says nothing about the endpoint's health.
ALTER TABLE destinations
    ADD COLUMN paused boolean NOT NULL DEFAULT false,
    ADD COLUMN paused_at timestamptz;
