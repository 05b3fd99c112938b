-- Documents that no entry names are deleted a day after their upload
-- (housekeeping): it finds them by age, oldest first, without reading
-- their bodies (on SQLite a column stored after the body would be read
-- through every page of it).
CREATE INDEX documents_by_age ON documents (created_at, tenant_id, id);
