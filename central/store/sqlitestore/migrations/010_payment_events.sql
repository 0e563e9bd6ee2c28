-- Stripe webhook events applied, by event id: a redelivered event is
-- recognised and changes nothing.
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

-- Money matters an operator must settle: a dispute opened by the
-- cardholder's bank, an overstay fee the card declined. Never card data.
CREATE TABLE payment_exceptions (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    reservation_id TEXT NOT NULL DEFAULT '',
    amount         INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    provider_ref   TEXT NOT NULL DEFAULT '',
    reason         TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX payment_exceptions_created ON payment_exceptions (created_at);

-- Webhook events name the provider's payment: find its attempt.
CREATE INDEX payment_attempts_provider_ref ON payment_attempts (provider_ref) WHERE provider_ref <> '';
