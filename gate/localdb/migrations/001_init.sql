-- gated's one SQLite file: the reservation cache, what the gate knows about
-- which cars are inside, and the outbox of decisions. Times are INTEGER unix
-- microseconds UTC (the precision centrald stores), NULL for "not set".
-- Tables are STRICT so a wrongly typed value fails loudly instead of being
-- stored as text and compared wrongly.

-- Small counters that must change in the same transaction as the rows they
-- describe: the cache version (central's change-log version the cache is
-- at) and the newest trusted wall-clock time ever stored (the trusted-clock
-- check refuses a clock that went back behind it).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('cache_version', 0), ('newest_time', 0);

-- The reservation cache, as central last described each reservation. Final
-- states (left, cancelled, no_show, expired) are kept for a while: they are
-- the revocations that stop an authentic ticket from opening the barrier.
CREATE TABLE reservations (
    id             TEXT PRIMARY KEY,
    spot_id        TEXT NOT NULL,
    reserved_from  INTEGER NOT NULL,
    reserved_until INTEGER NOT NULL,
    car_id         TEXT NOT NULL DEFAULT '',
    -- car_id normalised (upper case, no spaces, dashes or dots), what a
    -- camera read is compared with.
    plate          TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,
    -- The cache version that last wrote this row.
    version        INTEGER NOT NULL,
    CHECK (reserved_until > reserved_from)
) STRICT;

-- Plate-based entry and exit look a plate's few reservations up by plate.
CREATE INDEX reservations_plate ON reservations (plate, reserved_from) WHERE plate <> '';
-- Pruning finds ended reservations by the end of their window.
CREATE INDEX reservations_until ON reservations (reserved_until);

-- Which reservations' cars are inside, as this gate saw them or central
-- reported them. inside and changed_at are set by the newest fact; a row
-- with inside = 0 is positive knowledge that the car is out (anti-passback
-- at the exit), no row means "not known".
CREATE TABLE presence (
    reservation_id TEXT PRIMARY KEY,
    inside         INTEGER NOT NULL CHECK (inside IN (0, 1)),
    changed_at     INTEGER NOT NULL,
    entered_at     INTEGER,
    exited_at      INTEGER
) STRICT;

-- Every decision and lane event, until central has acknowledged it.
-- AUTOINCREMENT, not a plain rowid: a sequence number is never handed out
-- twice, even after the newest events were acknowledged and deleted, so
-- central can tell a new event from a retransmission by (gate, seq).
CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    gate_id          TEXT NOT NULL,
    role             TEXT NOT NULL,
    at               INTEGER NOT NULL,
    source           TEXT NOT NULL DEFAULT '',
    granted          INTEGER NOT NULL CHECK (granted IN (0, 1)),
    reason           TEXT NOT NULL DEFAULT '',
    reservation_id   TEXT NOT NULL DEFAULT '',
    spot_id          TEXT NOT NULL DEFAULT '',
    car_id           TEXT NOT NULL DEFAULT '',
    plate            TEXT NOT NULL DEFAULT '',
    overstay         INTEGER NOT NULL DEFAULT 0 CHECK (overstay IN (0, 1)),
    presence_unknown INTEGER NOT NULL DEFAULT 0 CHECK (presence_unknown IN (0, 1)),
    clock_trusted    INTEGER NOT NULL DEFAULT 0 CHECK (clock_trusted IN (0, 1)),
    detail           TEXT NOT NULL DEFAULT ''
) STRICT;
