-- The gates: credentials for the embedded MQTT broker (hashed), presence
-- as their retained status reports it, and every event they delivered.

CREATE TABLE gates (
    id            TEXT PRIMARY KEY,
    password_hash BLOB,            -- NULL: no credentials (an external broker authenticates)
    role          TEXT NOT NULL DEFAULT '',
    online        INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    -- The gate's connection counter: a will from an older session must
    -- not mark a newer one offline.
    session       INTEGER NOT NULL DEFAULT 0,
    last_seen     INTEGER,
    cache_version INTEGER NOT NULL DEFAULT 0,
    outbox        INTEGER NOT NULL DEFAULT 0,
    barrier       TEXT NOT NULL DEFAULT '',
    software      TEXT NOT NULL DEFAULT '',
    added_at      INTEGER NOT NULL
) STRICT;

-- One row per event id: a gate resends until acknowledged, so a repeat is
-- expected and must have no second effect.
CREATE TABLE gate_events (
    event_id         TEXT PRIMARY KEY,
    gate_id          TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    role             TEXT NOT NULL,
    at               INTEGER NOT NULL,
    source           TEXT NOT NULL DEFAULT '',
    granted          INTEGER NOT NULL CHECK (granted IN (0, 1)),
    reason           TEXT NOT NULL DEFAULT '',
    reservation_id   TEXT NOT NULL DEFAULT '',
    spot_id          TEXT NOT NULL DEFAULT '',
    car_id           TEXT NOT NULL DEFAULT '',
    overstay         INTEGER NOT NULL DEFAULT 0,
    presence_unknown INTEGER NOT NULL DEFAULT 0,
    clock_trusted    INTEGER NOT NULL DEFAULT 0,
    received_at      INTEGER NOT NULL,
    -- applied (changed spot state), recorded (nothing to apply: a denial,
    -- a fault) or exception (contradicts central's state; for operators).
    outcome          TEXT NOT NULL CHECK (outcome IN ('applied', 'recorded', 'exception')),
    note             TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX gate_events_gate_seq ON gate_events (gate_id, seq);
CREATE INDEX gate_events_exceptions ON gate_events (received_at) WHERE outcome = 'exception';
