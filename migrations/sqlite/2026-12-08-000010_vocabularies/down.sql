DROP TABLE reviews;
ALTER TABLE tenants DROP COLUMN reviews_held;
ALTER TABLE tenants DROP COLUMN ambiguous_messages;
ALTER TABLE tenants DROP COLUMN languages;
