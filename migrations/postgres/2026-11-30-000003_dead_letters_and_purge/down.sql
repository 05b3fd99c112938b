DROP INDEX idempotency_keys_age;
DROP INDEX dead_letters_waiting;
ALTER TABLE dead_letters DROP COLUMN resolved_seq;
ALTER TABLE dead_letters DROP COLUMN resolved_at;
ALTER TABLE dead_letters DROP COLUMN user_id_hash;
ALTER TABLE dead_letters DROP COLUMN opt_out;
