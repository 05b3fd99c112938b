ALTER TABLE dead_letters DROP COLUMN canonical;
UPDATE idempotency_keys SET request_sha256 = substr(request_sha256, 8)
WHERE request_sha256 LIKE 'sha256:%';
DELETE FROM legacy_windows;
INSERT OR IGNORE INTO legacy_windows (tenant_id, identity, phone_number_id, last_inbound_at)
SELECT w.tenant_id, s.identity, w.phone_number_id, w.last_inbound_at
FROM windows w JOIN subjects s ON s.id = w.subject_id
WHERE s.identity IS NOT NULL AND s.erased_at IS NULL AND s.closed_at IS NULL;
DROP TABLE windows;
ALTER TABLE legacy_windows RENAME TO windows;
CREATE INDEX IF NOT EXISTS windows_age ON windows (last_inbound_at);
DROP INDEX subjects_identity_hash;
ALTER TABLE subjects DROP COLUMN closed_seq;
ALTER TABLE subjects DROP COLUMN identity_hash;
