-- Every admitted alert writes a page of each index it lands in at random,
-- and a commit's cost grows with its pages. As on SQLite:
--
-- * `runs_by_fingerprint` served only a resolved alert looking for its
--   queued runs. The dedup keys now lead with the fingerprint, so that
--   lookup goes through them, and a run needs no index by fingerprint.
-- * `audit_by_run` leaves out the records of no run (an alert's), which
--   no query looks up by run.

ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries ADD PRIMARY KEY (fingerprint, route, starts_at);

DROP INDEX runs_by_fingerprint;

DROP INDEX audit_by_run;
CREATE INDEX audit_by_run ON audit (run_id, seq) WHERE run_id IS NOT NULL;
