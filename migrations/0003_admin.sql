-- Indexes for the admin API. The oldest pending delivery of a tenant (GET /v1/stats) and the
-- backlog count (GET /v1/tenant, /v1/stats) read only pending rows through this partial index,
-- however long the tenant's history of finished deliveries is.
CREATE INDEX deliveries_tenant_pending ON deliveries (tenant_id, id) WHERE status = 'pending';
