-- Named operator accounts for the console (centrald operator add NAME).
CREATE TABLE operators (
    name          text PRIMARY KEY,
    password_hash bytea NOT NULL, -- argon2id
    created_at    timestamptz NOT NULL
);
