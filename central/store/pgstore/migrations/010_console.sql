-- The operator console: who did what and why in the change log (the gate
-- an operator opened, the reason given), and how an exception was
-- resolved, by whom.
ALTER TABLE changes ADD COLUMN gate_id text NOT NULL DEFAULT '';
ALTER TABLE changes ADD COLUMN note text NOT NULL DEFAULT '';
ALTER TABLE gate_events ADD COLUMN resolved_at timestamptz;
ALTER TABLE gate_events ADD COLUMN resolved_by text NOT NULL DEFAULT '';
ALTER TABLE gate_events ADD COLUMN resolution text NOT NULL DEFAULT '';
-- The console's event stream reads the newest gate events several times a
-- second while a console is open.
CREATE INDEX gate_events_received ON gate_events (received_at);
