-- The hash of the request that used an attempt's Idempotency-Key (see
-- sqlitestore's 008_attempt_request_hash.sql).
ALTER TABLE payment_attempts ADD COLUMN request_hash bytea;
