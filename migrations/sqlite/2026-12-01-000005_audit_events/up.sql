-- The audit trail (SPEC section 11): per tenant, append-only, numbered
-- from 1 without gaps in the order of commit (audit_heads holds the last
-- number; writers lock its row). Never a number, key, salt, secret or
-- evidence body in `details`.
CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    size BIGINT NOT NULL
);
CREATE TABLE audit_events (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- Closed windows are purged by age (SPEC section 11).
CREATE INDEX windows_age ON windows (last_inbound_at);
