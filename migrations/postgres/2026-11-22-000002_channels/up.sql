-- Channels that record by themselves (SPEC section 7).

-- Each tenant's channel settings: the PUT body with every secret sealed
-- under the key-encryption key.
CREATE TABLE channel_settings (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id),
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A WhatsApp phone number id or a Twilio number belongs to one tenant.
CREATE TABLE channel_numbers (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    PRIMARY KEY (kind, value)
);
CREATE INDEX channel_numbers_tenant ON channel_numbers (tenant_id);

-- Provider message ids already handled, forever, as the tenant's keyed
-- hash (it survives erasure and names no one).
CREATE TABLE webhook_dedup (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key_hash TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_hash)
);

-- Meta's business-scoped user ids, kept as aliases of a number.
CREATE TABLE subject_aliases (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    e164 TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- What a webhook could not apply (an unknown business number, an opt-out
-- whose sender is unknown): never dropped. The payload is sealed; message
-- ids stay inside it (a WhatsApp message id encodes the sender's number).
CREATE TABLE dead_letters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    provider TEXT NOT NULL,
    reason TEXT NOT NULL,
    phone_number_id TEXT,
    received_at BIGINT NOT NULL,
    payload_sealed TEXT NOT NULL
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant_id, id);

-- Which opt-outs a message may lift: 'keyword' (START, UNSTOP, YES on the
-- same capture channel), 'marketing_preference' (WhatsApp's resume); NULL:
-- none (API and pages).
ALTER TABLE consent_events ADD COLUMN lift_class TEXT;
