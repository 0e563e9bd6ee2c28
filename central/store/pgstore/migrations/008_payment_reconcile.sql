-- Unknown outcomes, attempt purpose, saved customer and the reconciler's
-- index (see sqlitestore's 009_payment_reconcile.sql).
UPDATE payment_attempts SET outcome = 'unknown' WHERE outcome = 'failed';
ALTER TABLE payment_attempts ADD COLUMN purpose text NOT NULL DEFAULT '';
ALTER TABLE payment_attempts ADD COLUMN customer_ref text NOT NULL DEFAULT '';
CREATE INDEX payment_attempts_unsettled ON payment_attempts (started_at)
    WHERE outcome IN ('pending', 'unknown', 'requires_action');
