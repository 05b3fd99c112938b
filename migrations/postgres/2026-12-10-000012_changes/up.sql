-- The change feed (SPEC section 13, docs/changes.md): what it says of each
-- `erasure` entry once the identity is gone, the HMAC-SHA256 of the erased
-- identity under the tenant's feed key. Written in the erasure's own
-- transaction; the identity itself is never kept here.
CREATE TABLE erased_identity_hashes (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    seq BIGINT NOT NULL,
    identity_hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
