-- Backoff restarts with the retry window: a redelivery or replay records how many attempts the
-- delivery had made before it, and the schedule counts only the attempts since.
ALTER TABLE deliveries ADD COLUMN attempts_before_window integer NOT NULL DEFAULT 0;
