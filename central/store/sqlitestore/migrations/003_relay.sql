-- Where the relay to the gates has got to in the change log: the last
-- version published on central/changes (and acknowledged by the broker).
-- A relay that starts (after a restart, or as the new leader of several
-- instances) goes on from here with batches, instead of announcing the
-- log's head and making every gate download a snapshot.
CREATE TABLE relay_position (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO relay_position (id, version) VALUES (1, 0);
