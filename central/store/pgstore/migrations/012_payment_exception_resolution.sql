-- The operator console: how a payment exception (a dispute, an unpaid
-- overstay fee) was resolved, by whom.
ALTER TABLE payment_exceptions ADD COLUMN resolved_at timestamptz;
ALTER TABLE payment_exceptions ADD COLUMN resolved_by text NOT NULL DEFAULT '';
ALTER TABLE payment_exceptions ADD COLUMN resolution text NOT NULL DEFAULT '';
-- The console's event stream reads the latest refunds (recorded or
-- settled) several times a second while a console is open.
CREATE INDEX refunds_activity ON refunds (coalesce(finished_at, created_at));
