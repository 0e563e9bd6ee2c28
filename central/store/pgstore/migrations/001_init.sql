-- The whole schema of sqlitestore's 001_init.sql and 002_gates.sql, in
-- PostgreSQL's types: timestamptz for times (NULL is the zero time; the
-- store writes microseconds, PostgreSQL's precision, so what is read back
-- equals what was written), bytea, boolean, bigint.
--
-- Ids are COLLATE "C": the store orders by them (List, Current, Gates,
-- retirements in SetSpots) and must order exactly as SQLite's byte-wise
-- BINARY collation does, whatever the database's default collation is.
--
-- btree_gist (for the overlap constraint) is installed by the store before
-- this runs, under the same advisory lock: an extension belongs to the
-- whole database, not to this schema.

CREATE TABLE spots (
    id       text COLLATE "C" PRIMARY KEY,
    position bigint NOT NULL,
    active   boolean NOT NULL DEFAULT true,
    added_at timestamptz NOT NULL
);

CREATE TABLE reservations (
    id                 text COLLATE "C" PRIMARY KEY,
    spot_id            text COLLATE "C" NOT NULL REFERENCES spots (id),
    state              text NOT NULL CHECK (state IN ('reserved', 'paid', 'taken', 'left', 'expired', 'no_show', 'cancelled')),
    source             text NOT NULL,
    reserved_from      timestamptz NOT NULL,
    reserved_until     timestamptz NOT NULL,
    created_at         timestamptz,
    car_id             text NOT NULL DEFAULT '',
    amount             bigint NOT NULL DEFAULT 0,
    currency           text NOT NULL DEFAULT '',
    reference          text NOT NULL DEFAULT '',
    paid_at            timestamptz,
    checked_in_at      timestamptz,
    left_at            timestamptz,
    ended_at           timestamptz,
    token_hash         bytea,
    payment_attempts   bigint NOT NULL DEFAULT 0,
    payment_ref        text NOT NULL DEFAULT '',
    payment_started_at timestamptz,
    -- An empty or inverted window overlaps nothing and would slip past the
    -- overlap constraint (and tstzrange refuses an inverted one with a
    -- less helpful error).
    CONSTRAINT reservations_window CHECK (reserved_until > reserved_from),
    -- The database itself refuses double booking, so a caller that forgot
    -- to check Tx.Live (or raced another instance) cannot break the rule.
    -- Windows are half-open ('[)'), so adjacent ones do not overlap. The
    -- store maps exclusion_violation (23P01) to store.ErrOverlap.
    CONSTRAINT reservations_no_overlap EXCLUDE USING gist (
        spot_id WITH =,
        tstzrange(reserved_from, reserved_until) WITH &&
    ) WHERE (state IN ('reserved', 'paid', 'taken'))
);

-- List by spot: spot + window start.
CREATE INDEX reservations_spot_from ON reservations (spot_id, reserved_from);
-- Sweeps (expiry, no-shows, finished windows): state + window end / creation.
CREATE INDEX reservations_state_until ON reservations (state, reserved_until);
CREATE INDEX reservations_state_created ON reservations (state, created_at);
-- Live reservations by spot and end: "the spot's current or next
-- reservation" (Current) and Tx.Live only look at live rows, and a spot's
-- history of finished ones must not slow them down. Live windows of a spot
-- never overlap, so ordering them by end also orders them by start.
CREATE INDEX reservations_live ON reservations (spot_id, reserved_until) WHERE state IN ('reserved', 'paid', 'taken');
-- Reservations that left, by spot and end (Current: left early, window
-- not over yet).
CREATE INDEX reservations_left ON reservations (spot_id, reserved_until) WHERE state = 'left';
CREATE UNIQUE INDEX reservations_token_hash ON reservations (token_hash) WHERE token_hash IS NOT NULL;

-- A new reservation needs an active spot; an existing one may stay on (and
-- be finished on) a spot retired after it was made, and only a move to
-- another spot needs an active one: the same rule as SQLite's guard
-- triggers. The foreign key alone would accept a retired spot. The error
-- is a foreign_key_violation naming reservations_spot_active, which the
-- store maps to store.ErrUnknownSpot. search_path is pinned to the one the
-- schema was created with, so that raw SQL from a session with another
-- search_path still finds this schema's spots.
CREATE FUNCTION reservations_guard_spot() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM spots WHERE id = NEW.spot_id AND active) THEN
        RAISE EXCEPTION 'parkgate: unknown spot %', NEW.spot_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'reservations_spot_active';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER reservations_guard_insert BEFORE INSERT ON reservations
    FOR EACH ROW EXECUTE FUNCTION reservations_guard_spot();
CREATE TRIGGER reservations_guard_update BEFORE UPDATE OF spot_id ON reservations
    FOR EACH ROW WHEN (NEW.spot_id IS DISTINCT FROM OLD.spot_id) EXECUTE FUNCTION reservations_guard_spot();

-- The change log. The store inserts a transaction's entries only at its
-- end, holding an advisory lock until commit, so versions are handed out
-- in commit order and a follower paging with version > after never skips
-- one. An identity (a sequence) rather than max+1: a version is never
-- handed out twice, even after the newest entries were deleted (e.g. by a
-- future pruning). CACHE 1 (the default) matters: a session caching
-- values would hand them out out of order.
CREATE TABLE changes (
    version        bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    at             timestamptz NOT NULL,
    kind           text NOT NULL,
    spot_id        text NOT NULL DEFAULT '',
    reservation_id text NOT NULL DEFAULT '',
    actor          text NOT NULL,
    -- JSON snapshot after the change; NULL for spot changes. json, not
    -- jsonb: json keeps the text exactly as written and accepts every
    -- string encoding/json produces, where jsonb refuses \u0000.
    reservation    json
);

CREATE TABLE payment_attempts (
    reservation_id text COLLATE "C" NOT NULL REFERENCES reservations (id),
    number         bigint NOT NULL,
    key_hash       bytea,
    provider_key   text NOT NULL DEFAULT '',
    outcome        text NOT NULL,
    provider_ref   text NOT NULL DEFAULT '',
    message        text NOT NULL DEFAULT '',
    amount         bigint NOT NULL DEFAULT 0,
    currency       text NOT NULL DEFAULT '',
    car_id         text NOT NULL DEFAULT '',
    -- The provider's payment-method reference (pm_...), never card data:
    -- an attempt whose outcome is unknown is re-driven with exactly the
    -- same parameters, as the provider's idempotency demands.
    payment_method text NOT NULL DEFAULT '',
    started_at     timestamptz,
    finished_at    timestamptz,
    PRIMARY KEY (reservation_id, number)
);

-- One attempt per idempotency key and reservation: a retried request finds
-- the first attempt instead of starting a second charge.
CREATE UNIQUE INDEX payment_attempts_key ON payment_attempts (reservation_id, key_hash) WHERE key_hash IS NOT NULL;

-- Money given back (early departure, no-show, cancellation). A refund is
-- recorded as pending in the same transaction as the state change that
-- owes it, so a crash cannot lose it; the refunder then settles it with
-- the provider and records the provider's object id.
CREATE TABLE refunds (
    reservation_id text COLLATE "C" NOT NULL REFERENCES reservations (id),
    number         bigint NOT NULL,
    reason         text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    currency       text NOT NULL,
    charge_ref     text NOT NULL,
    provider_key   text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'succeeded', 'refused')),
    provider_ref   text NOT NULL DEFAULT '',
    message        text NOT NULL DEFAULT '',
    tries          bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    PRIMARY KEY (reservation_id, number)
);

CREATE INDEX refunds_pending ON refunds (created_at) WHERE status = 'pending';

-- The gates: credentials for the embedded MQTT broker (hashed), presence
-- as their retained status reports it, and every event they delivered.
CREATE TABLE gates (
    id            text COLLATE "C" PRIMARY KEY,
    password_hash bytea,            -- NULL: no credentials (an external broker authenticates)
    role          text NOT NULL DEFAULT '',
    online        boolean NOT NULL DEFAULT false,
    -- The gate's connection counter: a will from an older session must
    -- not mark a newer one offline.
    session       bigint NOT NULL DEFAULT 0,
    last_seen     timestamptz,
    cache_version bigint NOT NULL DEFAULT 0,
    outbox        bigint NOT NULL DEFAULT 0,
    barrier       text NOT NULL DEFAULT '',
    software      text NOT NULL DEFAULT '',
    added_at      timestamptz NOT NULL
);

-- One row per event id: a gate resends until acknowledged, so a repeat is
-- expected and must have no second effect.
CREATE TABLE gate_events (
    event_id         text COLLATE "C" PRIMARY KEY,
    gate_id          text COLLATE "C" NOT NULL,
    seq              bigint NOT NULL,
    kind             text NOT NULL,
    role             text NOT NULL,
    at               timestamptz NOT NULL,
    source           text NOT NULL DEFAULT '',
    granted          boolean NOT NULL,
    reason           text NOT NULL DEFAULT '',
    reservation_id   text NOT NULL DEFAULT '',
    spot_id          text NOT NULL DEFAULT '',
    car_id           text NOT NULL DEFAULT '',
    overstay         boolean NOT NULL DEFAULT false,
    presence_unknown boolean NOT NULL DEFAULT false,
    clock_trusted    boolean NOT NULL DEFAULT false,
    received_at      timestamptz NOT NULL,
    -- applied (changed spot state), recorded (nothing to apply: a denial,
    -- a fault) or exception (contradicts central's state; for operators).
    outcome          text NOT NULL CHECK (outcome IN ('applied', 'recorded', 'exception')),
    note             text NOT NULL DEFAULT ''
);

CREATE INDEX gate_events_gate_seq ON gate_events (gate_id, seq);
CREATE INDEX gate_events_exceptions ON gate_events (received_at) WHERE outcome = 'exception';
