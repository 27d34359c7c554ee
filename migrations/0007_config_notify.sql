-- Ingress processes cache sources (with their tenant's plan and status) and drop an entry as
-- soon as it changes anywhere in the fleet: every change to a source or a tenant is announced on
-- this channel, whoever makes it (admin API, CLI, operator SQL).
CREATE FUNCTION announce_config_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wap_relay_config', TG_ARGV[0] || ':' || OLD.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sources_announce AFTER UPDATE OR DELETE ON sources
    FOR EACH ROW EXECUTE FUNCTION announce_config_change('source');
CREATE TRIGGER tenants_announce AFTER UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION announce_config_change('tenant');
