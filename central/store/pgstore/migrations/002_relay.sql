-- Where the relay to the gates has got to in the change log (see
-- sqlitestore's 003_relay.sql): the new leader of several instances goes
-- on from here with batches instead of making every gate resync.
CREATE TABLE relay_position (
    id      integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO relay_position (id, version) VALUES (1, 0);
