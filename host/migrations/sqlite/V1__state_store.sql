-- remedy's state store on SQLite: runs and their records, the durable
-- queue's dedup keys, circuit breakers, and the hash-chained audit trail.
-- Stores from before migrations have these tables already (IF NOT EXISTS);
-- their missing run columns are added before this runs.

CREATE TABLE IF NOT EXISTS runs (
    id             TEXT PRIMARY KEY,
    plugin         TEXT NOT NULL,
    plugin_version TEXT NOT NULL,
    plugin_sha256  TEXT NOT NULL,
    trigger        TEXT NOT NULL,
    dry_run        INTEGER NOT NULL,
    alert          TEXT NOT NULL,
    params         TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    created_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    route          TEXT,
    fingerprint    TEXT,
    group_key      TEXT,
    target         TEXT,
    approval       INTEGER NOT NULL DEFAULT 0,
    owner          TEXT,
    started_ms     INTEGER,
    approval_plan  TEXT,
    approval_hash  TEXT,
    approved_by    TEXT,
    approved_ms    INTEGER,
    node           TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_plugin ON runs (plugin, created_ms);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_ms);
CREATE INDEX IF NOT EXISTS runs_by_group ON runs (route, group_key, created_ms);
CREATE INDEX IF NOT EXISTS runs_by_fingerprint ON runs (fingerprint, status);

CREATE TABLE IF NOT EXISTS deliveries (
    route       TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    run_id      TEXT,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (route, fingerprint, starts_at)
);

CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    status      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    alert       TEXT NOT NULL,
    outcome     TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS breakers (
    route     TEXT PRIMARY KEY,
    opened_ms INTEGER NOT NULL,
    reason    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rounds (
    run_id         TEXT NOT NULL REFERENCES runs (id),
    round          INTEGER NOT NULL,
    plan           TEXT NOT NULL,
    instantiate_us INTEGER NOT NULL,
    plan_us        INTEGER NOT NULL,
    PRIMARY KEY (run_id, round)
);

CREATE TABLE IF NOT EXISTS actions (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    round       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    action      TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    intent_ms   INTEGER NOT NULL,
    duration_us INTEGER
);
CREATE INDEX IF NOT EXISTS actions_by_run ON actions (run_id, round, seq);
CREATE INDEX IF NOT EXISTS actions_by_time ON actions (status, intent_ms);

CREATE TABLE IF NOT EXISTS logs (
    run_id  TEXT NOT NULL REFERENCES runs (id),
    round   INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id, round, seq);

CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    run_id    TEXT,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_run ON audit (run_id, seq);

CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
