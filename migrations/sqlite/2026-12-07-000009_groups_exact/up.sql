-- Closed groups and erasure, made exact (SPEC sections 2, 3, 10 and 11).

-- Every subject keeps the tenant's keyed hash of its identity, also once
-- erased: an identity's newest subject is found even when it is erased, so
-- a check, a query or a dossier never falls back to an older group, and a
-- second erasure knows there was a first. Filled at start for the subjects
-- already stored (the hash needs the master key).
ALTER TABLE subjects ADD COLUMN identity_hash TEXT;
CREATE INDEX subjects_identity_hash ON subjects (tenant_id, identity_hash, id);
-- The opt-out that closed a subject's group: what a closed group answers.
ALTER TABLE subjects ADD COLUMN closed_seq BIGINT;
UPDATE subjects SET closed_seq = (
    SELECT MAX(e.seq) FROM consent_events e
    WHERE e.group_id = subjects.group_id AND e.kind = 'opt_out'
      AND e.purposes = 7 AND e.message_channels = 3
) WHERE closed_at IS NOT NULL;

-- Windows belong to the subject whose message opened them, never to an
-- identity: a closed group's windows are not read by its identities' new
-- subjects, nor the new ones by the old group.
ALTER TABLE windows RENAME TO legacy_windows;
DROP INDEX IF EXISTS windows_age;
CREATE TABLE windows (
    subject_id BIGINT NOT NULL REFERENCES subjects(id),
    phone_number_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    last_inbound_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, phone_number_id)
);
CREATE INDEX windows_age ON windows (last_inbound_at);
-- An open subject's windows move to it; closed groups' windows are dropped.
-- What is left (an identity that wrote but holds no open subject) is moved
-- at start onto a new subject, while its window is still open.
INSERT INTO windows (subject_id, phone_number_id, tenant_id, last_inbound_at)
SELECT s.id, w.phone_number_id, w.tenant_id, w.last_inbound_at
FROM legacy_windows w JOIN subjects s
  ON s.tenant_id = w.tenant_id AND s.identity = w.identity
 AND s.erased_at IS NULL AND s.closed_at IS NULL;
DELETE FROM legacy_windows WHERE EXISTS (
    SELECT 1 FROM subjects s
    WHERE s.tenant_id = legacy_windows.tenant_id AND s.identity = legacy_windows.identity
      AND s.erased_at IS NULL AND s.closed_at IS NULL
);

-- Idempotency records keep the tenant's keyed hash of the body; a plain
-- SHA-256 stored before this upgrade is marked so that its retry still
-- matches until it expires (24 h).
UPDATE idempotency_keys SET request_sha256 = 'sha256:' || request_sha256
WHERE request_sha256 NOT LIKE 'sha256:%';

-- Dead letters: the canonical identity of each is written at start (the
-- payload is sealed); this marks the letters that still need it.
ALTER TABLE dead_letters ADD COLUMN canonical BOOLEAN NOT NULL DEFAULT FALSE;
