-- One-time gate enrollment codes (centrald gate enroll ID). The code's
-- secret is never stored: key is the Ed25519 public key derived from it,
-- which identifies the code and checks the gate's proof of knowing it.
CREATE TABLE enrollments (
    key        BLOB PRIMARY KEY,
    gate_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER -- NULL: not used yet
) STRICT;
