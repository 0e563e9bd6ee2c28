-- The operator console: who did what and why in the change log (the gate
-- an operator opened, the reason given), and how an exception was
-- resolved, by whom.
ALTER TABLE changes ADD COLUMN gate_id TEXT NOT NULL DEFAULT '';
ALTER TABLE changes ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE gate_events ADD COLUMN resolved_at INTEGER;
ALTER TABLE gate_events ADD COLUMN resolved_by TEXT NOT NULL DEFAULT '';
ALTER TABLE gate_events ADD COLUMN resolution TEXT NOT NULL DEFAULT '';
-- The console's event stream reads the newest gate events several times a
-- second while a console is open.
CREATE INDEX gate_events_received ON gate_events (received_at);
