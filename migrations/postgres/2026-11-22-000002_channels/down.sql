ALTER TABLE consent_events DROP COLUMN lift_class;
DROP TABLE dead_letters;
DROP TABLE subject_aliases;
DROP TABLE webhook_dedup;
DROP INDEX channel_numbers_tenant;
DROP TABLE channel_numbers;
DROP TABLE channel_settings;
