-- CONTRACT §7 names the default destination format `waping` (the raw bytes as received); 0014
-- called it `standard`. The API still accepts `standard` as an alias when writing.
ALTER TABLE destinations DROP CONSTRAINT destinations_format_check;
UPDATE destinations SET format = 'waping' WHERE format = 'standard';
ALTER TABLE destinations ALTER COLUMN format SET DEFAULT 'waping',
    ADD CONSTRAINT destinations_format_check CHECK (format IN ('waping', 'meta_cloud_api'));
