-- Credential-like custom headers of a destination (Authorization, Cookie, any name containing
-- token, secret, key, auth, password, signature or session) are secrets: they are stored sealed
-- with the master key, as one JSON object, in sealed_headers (NULL when there are none), and
-- `headers` keeps only the ordinary ones. Rows written before this migration may still hold such
-- headers in `headers`: readers merge both, and the next write of the destination's headers
-- through the admin API moves them to sealed_headers.
ALTER TABLE destinations ADD COLUMN sealed_headers bytea;

-- GET /v1/events?wap_event_id= without a source: at most one event per source matches, found
-- here in id order instead of by walking the tenant's whole history. IF NOT EXISTS lets an
-- operator of a large database build it beforehand with CREATE INDEX CONCURRENTLY (this
-- statement blocks event inserts while it builds).
CREATE INDEX IF NOT EXISTS events_tenant_wap_event ON events (tenant_id, wap_event_id, id DESC);
