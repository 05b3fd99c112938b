DROP INDEX windows_age;
DROP TABLE audit_events;
DROP TABLE audit_heads;
