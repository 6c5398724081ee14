-- An admission's commit writes every page its alerts change: a page of each
-- index they land in (at random, for a key like the fingerprint), and its
-- cost grows with those pages. Four of them go:
--
-- * `runs_by_fingerprint` served only a resolved alert looking for its
--   queued runs. The dedup keys now lead with the fingerprint, so that
--   lookup goes through them.
-- * The dedup keys are the table itself (WITHOUT ROWID), not a table and
--   an index beside it.
-- * `runs_by_plugin`: no query chose it (a plugin's recent actions are
--   found by time, then run).
-- * `runs_by_node`: every query through it asked for running runs, which
--   `runs_running` holds alone; a queued run is not in it.
--
-- And `audit_by_run` leaves out the records of no run (an alert's), which
-- no query looks up by run.

CREATE TABLE deliveries_by_fingerprint (
    fingerprint TEXT NOT NULL,
    route       TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    run_id      TEXT,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, route, starts_at)
) WITHOUT ROWID;
INSERT INTO deliveries_by_fingerprint (fingerprint, route, starts_at, outcome, run_id, received_ms)
    SELECT fingerprint, route, starts_at, outcome, run_id, received_ms FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_fingerprint RENAME TO deliveries;

DROP INDEX runs_by_fingerprint;
DROP INDEX runs_by_plugin;
DROP INDEX runs_by_node;
CREATE INDEX runs_running ON runs (route) WHERE status = 'running';

DROP INDEX audit_by_run;
CREATE INDEX audit_by_run ON audit (run_id, seq) WHERE run_id IS NOT NULL;
