-- Operator lists read the first page of their order through an index in
-- that order, so that a page costs the same after ten years of history as
-- on the first day (the lists used to read and sort every matching row).
-- The same indexes as sqlitestore's migration 020.

-- GET /admin/reservations: by spot position, spot id, window start, id.
-- A walk of the spots in this order, each spot's reservations read in
-- (reserved_from, id) order, needs no sort beyond a spot's own rows.
CREATE UNIQUE INDEX spots_position ON spots (position, id);
-- A spot's reservations in list order; id breaks ties of reserved_from
-- (finished reservations may share a window). It replaces (spot_id,
-- reserved_from), which it serves too.
DROP INDEX reservations_spot_from;
CREATE INDEX reservations_spot_order ON reservations (spot_id, reserved_from, id);
-- The same filtered by state: a spot's reservations of a rare state are
-- found without reading its history.
CREATE INDEX reservations_spot_state ON reservations (spot_id, state, reserved_from, id);

-- Gate events, newest first (received_at DESC, gate_id, seq DESC): the
-- console's feed and GET /admin/gate-events.
DROP INDEX gate_events_received;
CREATE INDEX gate_events_feed ON gate_events (received_at DESC, gate_id, seq DESC);
-- The console's exceptions and GET /admin/exceptions.
DROP INDEX gate_events_exceptions;
CREATE INDEX gate_events_exceptions ON gate_events (received_at DESC, gate_id, seq DESC) WHERE outcome = 'exception';
-- One gate's events (?gate=), and its exceptions. (gate_id, seq) served
-- no query.
DROP INDEX gate_events_gate_seq;
CREATE INDEX gate_events_gate ON gate_events (gate_id, received_at DESC, seq DESC);
CREATE INDEX gate_events_gate_exceptions ON gate_events (gate_id, received_at DESC, seq DESC) WHERE outcome = 'exception';

-- The console's refund feed, latest first.
DROP INDEX refunds_activity;
CREATE INDEX refunds_activity ON refunds ((coalesce(finished_at, created_at)) DESC, reservation_id, number);
