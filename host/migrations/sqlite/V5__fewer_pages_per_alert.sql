-- Every admitted alert writes a page of each index it lands in at random,
-- and a commit's cost grows with its pages. Two of those go:
--
-- * `runs_by_fingerprint` served only a resolved alert looking for its
--   queued runs. The dedup keys now lead with the fingerprint, so that
--   lookup goes through them, and a run needs no index by fingerprint.
-- * The dedup keys are the table itself (WITHOUT ROWID), not a table and
--   an index beside it.
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

DROP INDEX audit_by_run;
CREATE INDEX audit_by_run ON audit (run_id, seq) WHERE run_id IS NOT NULL;
