-- Destination format (CONTRACT §7): `standard` sends the event's bytes as received;
-- `meta_cloud_api` sends them rewritten as Meta's WhatsApp Cloud API `messages` webhook
-- (relay_core::meta), signed with X-Hub-Signature-256 too, and only the events that have a Meta
-- equivalent. `meta_context` holds what the Meta envelope needs and WAPing does not send.
ALTER TABLE destinations
    ADD COLUMN format text NOT NULL DEFAULT 'standard' CHECK (format IN ('standard', 'meta_cloud_api')),
    ADD COLUMN meta_context jsonb;
