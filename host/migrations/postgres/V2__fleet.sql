-- The fleet: every remedy process announces itself, and a running run is
-- held under a lease its process renews.

ALTER TABLE runs ADD COLUMN lease_ms BIGINT;
CREATE INDEX runs_by_node ON runs (status, node);

CREATE TABLE agents (
    owner        TEXT PRIMARY KEY,
    node         TEXT NOT NULL,
    role         TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    plugins      TEXT NOT NULL
);
CREATE INDEX agents_by_node ON agents (node, heartbeat_ms);
