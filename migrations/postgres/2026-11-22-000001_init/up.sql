-- consent-ledger schema v1 (PostgreSQL). Times are milliseconds since the Unix
-- epoch (UTC); ledger entries keep the exact canonical JSON that was hashed.

CREATE TABLE meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    origin TEXT NOT NULL UNIQUE,
    max_consent_age_days BIGINT,
    default_region TEXT,
    require_confirmation_for TEXT NOT NULL DEFAULT '[]',
    evidence_retention_days BIGINT,
    tree_size BIGINT NOT NULL DEFAULT 0,
    head_hash TEXT NOT NULL,
    head_recorded_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE brands (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    UNIQUE (tenant_id, name_key)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE subjects (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    commitment TEXT NOT NULL,
    e164 TEXT,
    salt TEXT,
    created_at BIGINT NOT NULL,
    erased_at BIGINT
);
-- One current subject per (tenant, number); erased ones keep only the commitment.
CREATE UNIQUE INDEX subjects_current ON subjects (tenant_id, e164) WHERE erased_at IS NULL;

CREATE TABLE consent_texts (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    sha256 TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);

CREATE TABLE entries (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    seq BIGINT NOT NULL,
    leaf_hash TEXT NOT NULL,
    canonical_json TEXT NOT NULL,
    subject_id BIGINT NOT NULL REFERENCES subjects(id),
    evidence_salt TEXT,
    evidence_jcs TEXT,
    consent_text_sha256 TEXT,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX entries_subject ON entries (subject_id, seq);

-- The state a check reads: one row per opt-in or opt-out, written in the
-- append transaction and updated by confirmations and lifts.
CREATE TABLE consent_events (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    seq BIGINT NOT NULL,
    subject_id BIGINT NOT NULL REFERENCES subjects(id),
    kind TEXT NOT NULL,
    captured_at BIGINT NOT NULL,
    channel TEXT NOT NULL,
    purposes INTEGER NOT NULL,
    message_channels INTEGER NOT NULL,
    brand_id BIGINT REFERENCES brands(id),
    company_name_shown TEXT,
    confirmation_required BOOLEAN NOT NULL DEFAULT FALSE,
    confirmation_code_sha256 TEXT,
    confirmation_expires_at BIGINT,
    confirmed_by BIGINT,
    lifted_by BIGINT,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX consent_events_subject ON consent_events (subject_id);

-- The customer-service window: the latest inbound message per business
-- phone number id ('' = an interaction that named none).
CREATE TABLE windows (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    e164 TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    last_inbound_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, e164, phone_number_id)
);

CREATE TABLE idempotency_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key_id TEXT NOT NULL,
    route TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    -- The request that holds the key; a takeover changes it.
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    subject_id BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_id, route, idempotency_key)
);

-- Hashes of complete Merkle subtrees (level 0: leaf hashes), written in the
-- append transaction: any proof reads O(log n) of them.
CREATE TABLE merkle_nodes (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
);

-- Each tenant's Ed25519 checkpoint keys; the seed sealed under the KEK.
CREATE TABLE signing_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    verifier_key TEXT NOT NULL UNIQUE,
    seed_sealed TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('current', 'retired', 'revoked')),
    first_size BIGINT NOT NULL,
    last_size BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (tenant_id) WHERE status = 'current';

-- Every signed checkpoint. Never two inconsistent ones for a log: sizes
-- never go below the largest stored one, and one size has one root.
CREATE TABLE checkpoints (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX checkpoints_size ON checkpoints (tenant_id, size);
CREATE FUNCTION checkpoints_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'checkpoints are append-only';
    END IF;
    IF NEW.size < (SELECT COALESCE(MAX(size), 0) FROM checkpoints WHERE tenant_id = NEW.tenant_id) THEN
        RAISE EXCEPTION 'checkpoint size below the largest stored one';
    END IF;
    IF EXISTS (SELECT 1 FROM checkpoints WHERE tenant_id = NEW.tenant_id AND size = NEW.size AND root <> NEW.root) THEN
        RAISE EXCEPTION 'a checkpoint of this size with another root exists';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER checkpoints_guard BEFORE INSERT OR UPDATE OR DELETE ON checkpoints
FOR EACH ROW EXECUTE FUNCTION checkpoints_guard();
