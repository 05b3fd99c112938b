-- Decision statements senders hand back for safekeeping (SPEC section 13,
-- docs/statements.md): kept as signed, found by the subject commitment they
-- name. A statement names nobody but by that commitment, so it outlives an
-- erasure of the person by design.
CREATE TABLE statements (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    sha256 TEXT NOT NULL,
    commitment TEXT,
    decided_at TEXT NOT NULL,
    note TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);
CREATE INDEX statements_by_commitment ON statements (tenant_id, commitment, decided_at);
