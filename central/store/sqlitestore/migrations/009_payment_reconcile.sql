-- An attempt whose answer was lost (provider error, timeout) is 'unknown'
-- until the reconciler asks the provider; 'failed' now means the provider
-- said nothing was charged. Attempts recorded before were all of the
-- first kind.
UPDATE payment_attempts SET outcome = 'unknown' WHERE outcome = 'failed';
-- What the money is for: '' the reservation's price, 'overstay' an overstay fee.
ALTER TABLE payment_attempts ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
-- The provider's customer the payment method was saved to for off-session
-- charges (cus_...): a reference, never card data.
ALTER TABLE payment_attempts ADD COLUMN customer_ref TEXT NOT NULL DEFAULT '';
-- The reconciler's work: attempts whose outcome is open, oldest first.
CREATE INDEX payment_attempts_unsettled ON payment_attempts (started_at)
    WHERE outcome IN ('pending', 'unknown', 'requires_action');
