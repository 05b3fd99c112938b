-- Opt-outs heard in the person's own language (SPEC section 7).

-- The languages whose vocabularies a tenant reads: a JSON list of codes;
-- NULL reads every shipped language (English is always read).
ALTER TABLE tenants ADD COLUMN languages TEXT;
-- What an ambiguous message does: 'opt_out' (an opt-out of the partial
-- purposes, listed for review) or 'review' (nothing until reviewed).
ALTER TABLE tenants ADD COLUMN ambiguous_messages TEXT NOT NULL DEFAULT 'opt_out';
-- Whether the tenant ever held an ambiguous message for review: checks read
-- review items only for such tenants.
ALTER TABLE tenants ADD COLUMN reviews_held BOOLEAN NOT NULL DEFAULT FALSE;

-- Ambiguous messages, listed for a person to review. `id` is the opt-out's
-- seq (mode 'opt_out') or 'rev_' and 12 hex (mode 'review'). The message,
-- the identity and the evidence are sealed; a review item is erased with
-- its group. A settled item stays, so a second settlement is refused.
CREATE TABLE reviews (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    mode TEXT NOT NULL,
    subject_id BIGINT NOT NULL REFERENCES subjects(id),
    group_id BIGINT NOT NULL,
    opt_out_seq BIGINT,
    purposes INTEGER NOT NULL,
    captured_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    message_sealed TEXT NOT NULL,
    settled_at BIGINT,
    decision TEXT,
    settled_seq BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX reviews_waiting ON reviews (tenant_id, settled_at, received_at);
CREATE INDEX reviews_group ON reviews (group_id);
