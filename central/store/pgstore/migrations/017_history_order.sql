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
-- The same of given states, state first: a page of a state few are in
-- (taken, with few cars in) looks into each spot's entries of that state,
-- which lie together in the index, instead of reading the history. It
-- replaces (state, created_at), whose queries (the sweeps' unpaid and
-- no-show reservations) read live states only, a few rows it serves as
-- well: the writes of a reservation keep their number of indexes.
DROP INDEX reservations_state_created;
CREATE INDEX reservations_state_spot ON reservations (state, spot_id, reserved_from, id);

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
