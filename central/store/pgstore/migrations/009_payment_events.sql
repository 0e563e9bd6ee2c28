-- Webhook events applied, payment exceptions for operators, attempts by
-- the provider's payment id (see sqlitestore's 010_payment_events.sql).
CREATE TABLE webhook_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    received_at timestamptz NOT NULL
);

CREATE TABLE payment_exceptions (
    id             text PRIMARY KEY,
    kind           text NOT NULL,
    reservation_id text NOT NULL DEFAULT '',
    amount         bigint NOT NULL,
    currency       text NOT NULL,
    provider_ref   text NOT NULL DEFAULT '',
    reason         text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL
);
CREATE INDEX payment_exceptions_created ON payment_exceptions (created_at);

CREATE INDEX payment_attempts_provider_ref ON payment_attempts (provider_ref) WHERE provider_ref <> '';
