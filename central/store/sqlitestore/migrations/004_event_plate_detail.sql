-- What a gate read and said about a decision: the normalised plate (a
-- denied plate is the only trace of a car that was turned away) and the
-- gate's free text for a person.
ALTER TABLE gate_events ADD COLUMN plate TEXT NOT NULL DEFAULT '';
ALTER TABLE gate_events ADD COLUMN detail TEXT NOT NULL DEFAULT '';
