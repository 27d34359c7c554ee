-- Replay on recovery (CONTRACT §7): when a destination that was failing answers again, the
-- deliveries that failed during its failing streak are queued once more (trigger `replay`).
ALTER TABLE destinations ADD COLUMN replay_on_recovery boolean NOT NULL DEFAULT false;
