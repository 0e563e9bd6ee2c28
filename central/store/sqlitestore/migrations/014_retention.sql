-- Retention of personal data: the finished reservations that still hold a
-- plate or a token hash, by when they finished, so that erasing them in
-- batches reads only what is left to erase, not ten years of history (an
-- erased row leaves the index).
CREATE INDEX reservations_personal ON reservations (coalesce(ended_at, reserved_until))
    WHERE state IN ('left', 'expired', 'no_show', 'cancelled') AND (car_id <> '' OR token_hash IS NOT NULL);
-- The gate events that still hold a plate, by receipt, likewise.
CREATE INDEX gate_events_personal ON gate_events (received_at) WHERE plate <> '' OR car_id <> '';
-- A reservation's change-log entries (their snapshots hold its plate).
CREATE INDEX changes_reservation ON changes (reservation_id) WHERE reservation_id <> '';
-- The console finds a car's reservations by plate.
CREATE INDEX reservations_car ON reservations (car_id) WHERE car_id <> '';
