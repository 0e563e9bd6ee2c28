-- Retention erases free text too: a gate's detail (which may name the
-- plate it read) and an operator's resolution of a gate event, and the
-- notes of change-log entries of no reservation (an operator's gate
-- opening, …). The gate events still holding any of it, by receipt, and
-- those notes, by when they were logged, so that a run reads only what
-- is left to erase (an erased row leaves the index).
DROP INDEX gate_events_personal;
CREATE INDEX gate_events_personal ON gate_events (received_at)
    WHERE plate <> '' OR car_id <> '' OR detail <> '' OR resolution <> '';
CREATE INDEX changes_notes ON changes (at) WHERE reservation_id = '' AND note <> '';
