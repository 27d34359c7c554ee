-- Nothing queries deliveries by next_attempt_at alone or by (tenant_id, next_attempt_at): the
-- claim walks deliveries_destination_due and the backlog count uses deliveries_tenant_pending.
-- Every claim and outcome rewrites next_attempt_at, so each needless index on it costs a write.
DROP INDEX IF EXISTS deliveries_due;
DROP INDEX IF EXISTS deliveries_tenant_due;
