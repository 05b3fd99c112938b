DROP TABLE event_deliveries;
DROP TABLE event_endpoints;
ALTER TABLE erased_identity_hashes DROP COLUMN identity_sealed;
ALTER TABLE erased_identity_hashes DROP COLUMN erased_at;
