-- Campaign entry points (SPEC section 14, docs/entry-points.md): a link
-- and QR code whose phrase, sent by WhatsApp, is an opt-in that names it.
CREATE TABLE entry_points (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    brand TEXT NOT NULL,
    -- A JSON array of purposes.
    purposes TEXT NOT NULL,
    phrase TEXT NOT NULL,
    prompt TEXT NOT NULL,
    -- The WhatsApp number the link opens a chat with (NULL: the first).
    phone_number_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
