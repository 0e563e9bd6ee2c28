-- The hash of the request that used an attempt's Idempotency-Key (method,
-- path, canonical body; never the body, which holds a plate): the key
-- reused with another request is refused even after the first finished.
-- NULL on attempts recorded before.
ALTER TABLE payment_attempts ADD COLUMN request_hash BLOB;
