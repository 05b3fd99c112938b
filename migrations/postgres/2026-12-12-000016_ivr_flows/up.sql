-- Hosted phone opt-in flows (SPEC section 14, docs/ivr.md), versioned like
-- forms: a changed definition is a new version, and every version stays
-- (an opt-in names the version its caller heard).
CREATE TABLE ivr_flows (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- The definition as JSON: brand, purposes, message_channels, language, prompt, digit.
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);
