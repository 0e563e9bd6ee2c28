-- One-time gate enrollment codes (centrald gate enroll ID). The code's
-- secret is never stored: key is the Ed25519 public key derived from it,
-- which identifies the code and checks the gate's proof of knowing it.
CREATE TABLE enrollments (
    key        bytea PRIMARY KEY,
    gate_id    text NOT NULL,
    role       text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz -- NULL: not used yet
);
