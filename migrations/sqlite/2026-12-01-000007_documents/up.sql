-- Evidence documents (SPEC section 8): scans of signed paper forms, kept in
-- the database so that every instance serves them. A paper opt-in or
-- opt-out that names a document ties it to its subject, so that erasing
-- the subject's group deletes it.
CREATE TABLE documents (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    body BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE document_subjects (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    document_id TEXT NOT NULL,
    subject_id BIGINT NOT NULL REFERENCES subjects(id),
    PRIMARY KEY (tenant_id, document_id, subject_id)
);
CREATE INDEX document_subjects_subject ON document_subjects (subject_id);
