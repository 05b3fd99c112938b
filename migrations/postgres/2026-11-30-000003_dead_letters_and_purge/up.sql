-- Dead letters an admin can act on, and that apply by themselves once they
-- can (SPEC section 3): whether a letter holds an opt-out, the tenant's
-- keyed hash of the user id it waits for, and when (and as which entry) it
-- was applied.
ALTER TABLE dead_letters ADD COLUMN opt_out BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE dead_letters ADD COLUMN user_id_hash TEXT;
ALTER TABLE dead_letters ADD COLUMN resolved_at BIGINT;
ALTER TABLE dead_letters ADD COLUMN resolved_seq BIGINT;
CREATE INDEX dead_letters_waiting ON dead_letters (tenant_id, user_id_hash);

-- Idempotency answers are kept 24 hours (SPEC section 10): purged by age.
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
