-- Identities erased on request (SPEC section 11): the tenant's keyed hash of
-- the identity and the time of its latest erasure. Never deleted.
CREATE TABLE suppressions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    identity_hash TEXT NOT NULL,
    erased_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, identity_hash)
);
