-- What a gate read and said about a decision (see sqlitestore's
-- 004_event_plate_detail.sql).
ALTER TABLE gate_events ADD COLUMN plate text NOT NULL DEFAULT '';
ALTER TABLE gate_events ADD COLUMN detail text NOT NULL DEFAULT '';
