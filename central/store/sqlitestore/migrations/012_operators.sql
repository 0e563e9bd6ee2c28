-- Named operator accounts for the console (centrald operator add NAME).
CREATE TABLE operators (
    name          TEXT PRIMARY KEY,
    password_hash BLOB NOT NULL, -- argon2id
    created_at    INTEGER NOT NULL
) STRICT;
