-- Outbound events (SPEC section 13, docs/events.md). An endpoint reads the
-- change feed from `next_seq` on; each change it takes becomes a delivery,
-- retried until its endpoint answers 2xx, or kept as failed after 24 hours.
CREATE TABLE event_endpoints (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    -- A JSON array of change types; NULL: every type.
    types TEXT,
    -- The signing key, sealed under the master key.
    secret_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_seq BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE event_deliveries (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    -- The `webhook-id`: the same for every attempt.
    id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    -- Deliveries of one group go out in seq order, one at a time.
    group_id BIGINT NOT NULL,
    -- pending, delivered or failed.
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    -- An instance delivering it holds it until then.
    leased_until BIGINT,
    last_attempt_at BIGINT,
    last_status INTEGER,
    last_error TEXT,
    -- An erasure's identities, sealed; dropped once delivered, or 7 days on.
    identities_sealed TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, endpoint_id, seq)
);
CREATE INDEX event_deliveries_due ON event_deliveries (status, next_attempt_at);
CREATE INDEX event_deliveries_by_group ON event_deliveries (tenant_id, endpoint_id, group_id, status, seq);
-- What an erasure erased, sealed, for the endpoints that have yet to take
-- it (only while the tenant has an endpoint).
ALTER TABLE erased_identity_hashes ADD COLUMN identity_sealed TEXT;
ALTER TABLE erased_identity_hashes ADD COLUMN erased_at BIGINT;
