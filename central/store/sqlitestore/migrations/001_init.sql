-- Times are INTEGER unix microseconds UTC (PostgreSQL's precision); NULL is
-- the zero time. Tables are STRICT so a wrongly typed value fails loudly
-- instead of being stored as text and compared wrongly.

CREATE TABLE spots (
    id       TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    active   INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    added_at INTEGER NOT NULL
) STRICT;

CREATE TABLE reservations (
    id               TEXT PRIMARY KEY,
    spot_id          TEXT NOT NULL REFERENCES spots (id),
    state            TEXT NOT NULL CHECK (state IN ('reserved', 'paid', 'taken', 'left', 'expired', 'no_show', 'cancelled')),
    source           TEXT NOT NULL,
    reserved_from    INTEGER NOT NULL,
    reserved_until   INTEGER NOT NULL,
    created_at       INTEGER,
    car_id           TEXT NOT NULL DEFAULT '',
    amount           INTEGER NOT NULL DEFAULT 0,
    currency         TEXT NOT NULL DEFAULT '',
    reference        TEXT NOT NULL DEFAULT '',
    paid_at          INTEGER,
    checked_in_at    INTEGER,
    left_at          INTEGER,
    ended_at         INTEGER,
    token_hash       BLOB,
    payment_attempts INTEGER NOT NULL DEFAULT 0,
    payment_ref      TEXT NOT NULL DEFAULT '',
    payment_started_at INTEGER,
    -- An empty or inverted window overlaps nothing and would slip past the
    -- overlap triggers.
    CHECK (reserved_until > reserved_from)
) STRICT;

-- Live, List by spot and the overlap triggers: spot + window start.
CREATE INDEX reservations_spot_from ON reservations (spot_id, reserved_from);
-- Sweeps (expiry, no-shows, finished windows): state + window end / creation.
CREATE INDEX reservations_state_until ON reservations (state, reserved_until);
CREATE INDEX reservations_state_created ON reservations (state, created_at);
-- Live reservations by spot and end: the overlap check (Tx.Live, the
-- triggers) and "the spot's current or next reservation" (Current) only
-- ever look at live rows, and a spot's history of finished ones must not
-- slow them down. Live windows of a spot never overlap, so ordering them
-- by end also orders them by start.
CREATE INDEX reservations_live ON reservations (spot_id, reserved_until) WHERE state IN ('reserved', 'paid', 'taken');
-- Reservations that left, by spot and end (Current: left early, window
-- not over yet).
CREATE INDEX reservations_left ON reservations (spot_id, reserved_until) WHERE state = 'left';
CREATE UNIQUE INDEX reservations_token_hash ON reservations (token_hash) WHERE token_hash IS NOT NULL;

-- The database itself refuses double booking, so a caller that forgot to
-- check Tx.Live (or raced another) cannot break the rule. The messages are
-- matched in Go to map the abort to store errors. One trigger per event, so
-- that the spot check deterministically runs before the overlap check.
CREATE TRIGGER reservations_guard_insert BEFORE INSERT ON reservations
BEGIN
    SELECT RAISE(ABORT, 'parkgate: unknown spot')
    WHERE NOT EXISTS (SELECT 1 FROM spots WHERE id = NEW.spot_id AND active = 1);
    SELECT RAISE(ABORT, 'parkgate: overlap')
    WHERE NEW.state IN ('reserved', 'paid', 'taken')
      AND EXISTS (
        SELECT 1 FROM reservations r
        WHERE r.spot_id = NEW.spot_id
          AND r.state IN ('reserved', 'paid', 'taken')
          AND r.reserved_from < NEW.reserved_until
          AND NEW.reserved_from < r.reserved_until);
END;

-- A reservation may stay on (and be finished on) a spot that was retired
-- after it was made; only a move to another spot needs an active one.
CREATE TRIGGER reservations_guard_update BEFORE UPDATE ON reservations
BEGIN
    SELECT RAISE(ABORT, 'parkgate: unknown spot')
    WHERE NEW.spot_id <> OLD.spot_id
      AND NOT EXISTS (SELECT 1 FROM spots WHERE id = NEW.spot_id AND active = 1);
    SELECT RAISE(ABORT, 'parkgate: overlap')
    WHERE NEW.state IN ('reserved', 'paid', 'taken')
      AND EXISTS (
        SELECT 1 FROM reservations r
        WHERE r.spot_id = NEW.spot_id
          AND r.id <> OLD.id
          AND r.state IN ('reserved', 'paid', 'taken')
          AND r.reserved_from < NEW.reserved_until
          AND NEW.reserved_from < r.reserved_until);
END;

-- AUTOINCREMENT, not a plain rowid: a version is never handed out twice,
-- even after the newest entries were deleted (e.g. by a future pruning).
CREATE TABLE changes (
    version        INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    spot_id        TEXT NOT NULL DEFAULT '',
    reservation_id TEXT NOT NULL DEFAULT '',
    actor          TEXT NOT NULL,
    reservation    TEXT -- JSON snapshot after the change; NULL for spot changes
) STRICT;

CREATE TABLE payment_attempts (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    number         INTEGER NOT NULL,
    key_hash       BLOB,
    provider_key   TEXT NOT NULL DEFAULT '',
    outcome        TEXT NOT NULL,
    provider_ref   TEXT NOT NULL DEFAULT '',
    message        TEXT NOT NULL DEFAULT '',
    amount         INTEGER NOT NULL DEFAULT 0,
    currency       TEXT NOT NULL DEFAULT '',
    car_id         TEXT NOT NULL DEFAULT '',
    -- The provider's payment-method reference (pm_...), never card data:
    -- an attempt whose outcome is unknown is re-driven with exactly the
    -- same parameters, as the provider's idempotency demands.
    payment_method TEXT NOT NULL DEFAULT '',
    started_at     INTEGER,
    finished_at    INTEGER,
    PRIMARY KEY (reservation_id, number)
) STRICT;

-- One attempt per idempotency key and reservation: a retried request finds
-- the first attempt instead of starting a second charge.
CREATE UNIQUE INDEX payment_attempts_key ON payment_attempts (reservation_id, key_hash) WHERE key_hash IS NOT NULL;

-- Money given back (early departure, no-show, cancellation). A refund is
-- recorded as pending in the same transaction as the state change that
-- owes it, so a crash cannot lose it; the refunder then settles it with
-- the provider and records the provider's object id.
CREATE TABLE refunds (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    number         INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL,
    charge_ref     TEXT NOT NULL,
    provider_key   TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'refused')),
    provider_ref   TEXT NOT NULL DEFAULT '',
    message        TEXT NOT NULL DEFAULT '',
    tries          INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    PRIMARY KEY (reservation_id, number)
) STRICT;

CREATE INDEX refunds_pending ON refunds (created_at) WHERE status = 'pending';
