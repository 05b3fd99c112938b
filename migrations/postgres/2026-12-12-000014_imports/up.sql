-- Bulk imports (SPEC section 14, docs/import.md): one row an import, by
-- the client's id. Lines before `next_line` are done (recorded or refused)
-- and commit with it, so a rerun records nothing twice.
CREATE TABLE imports (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    -- all_or_nothing or valid_lines.
    mode TEXT NOT NULL,
    -- ndjson or csv.
    format TEXT NOT NULL,
    -- The entries' collector: the admin's key id, or operator:cli.
    collector TEXT NOT NULL,
    -- running, done or refused.
    status TEXT NOT NULL,
    next_line BIGINT NOT NULL,
    read_lines BIGINT NOT NULL,
    recorded BIGINT NOT NULL,
    refused BIGINT NOT NULL,
    -- A JSON array of {line, code, detail} (at most 1,000; all are counted).
    refused_lines TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
