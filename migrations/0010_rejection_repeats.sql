-- Rejection writes are bounded: each process records the first few refusals per source and
-- reason per minute in full and counts the rest onto the last one it recorded.
ALTER TABLE rejections ADD COLUMN repeats bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN rejections.repeats IS
    'refusals of the same source and reason, in the same minute, after this one, not recorded in full';
