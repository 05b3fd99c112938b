-- People known without a number (SPEC section 3): a subject's identity is
-- a number (E.164) or a WhatsApp user id; subjects joined by
-- `identity_linked` entries form a group, and a check reads the group's
-- events through `group_id` (kept on the consent state, so no check walks
-- links). A closed group (a changed number) is never linked again; an
-- identity of it that arrives again starts a new subject.
ALTER TABLE subjects RENAME COLUMN e164 TO identity;
ALTER TABLE subjects ADD COLUMN group_id BIGINT;
ALTER TABLE subjects ADD COLUMN closed_at BIGINT;
UPDATE subjects SET group_id = id;
DROP INDEX subjects_current;
CREATE UNIQUE INDEX subjects_current ON subjects (tenant_id, identity) WHERE erased_at IS NULL AND closed_at IS NULL;
CREATE INDEX subjects_identity ON subjects (tenant_id, identity, id);
CREATE INDEX subjects_group ON subjects (group_id);

ALTER TABLE consent_events ADD COLUMN group_id BIGINT;
UPDATE consent_events SET group_id = subject_id;
CREATE INDEX consent_events_group ON consent_events (group_id);

ALTER TABLE windows RENAME COLUMN e164 TO identity;

-- Each link, with the WhatsApp Business Account it came through (a number
-- or user id that arrives paired with another identity of the same kind
-- through the same account closes its group) and its `captured_at` (a
-- group of links alone counts for retention from its last), SPEC sections
-- 3 and 11.
CREATE TABLE identity_links (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    seq BIGINT NOT NULL,
    subject_id BIGINT NOT NULL REFERENCES subjects(id),
    linked_subject_id BIGINT NOT NULL REFERENCES subjects(id),
    waba TEXT NOT NULL,
    captured_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX identity_links_subject ON identity_links (subject_id);
CREATE INDEX identity_links_linked ON identity_links (linked_subject_id);
