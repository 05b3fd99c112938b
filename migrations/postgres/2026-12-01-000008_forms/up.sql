-- Hosted opt-in forms (SPEC section 9): each form's current version, and
-- every version it ever had, immutable (an opt-in's evidence names the
-- version it was given on).
CREATE TABLE forms (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE form_versions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    form_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, form_id, version)
);
