-- `runs_by_status` held every run by status, so a run moved in it twice:
-- at its claim (queued to running) and at its end (running to its outcome),
-- each move rewriting that index's busiest leaves in a commit of its own.
-- Only queued and waiting runs are looked up by status and time; running
-- ones go through `runs_running`, and finished ones are read in scans
-- (listing, retention) that never used it. So an index of each open kind
-- alone: a run enters one at its admission or park and leaves it at its
-- claim, and its end writes none of them.

DROP INDEX runs_by_status;
CREATE INDEX runs_queued ON runs (created_ms) WHERE status = 'queued';
-- By due time: a poll for due runs reads only those.
CREATE INDEX runs_waiting ON runs (due_ms) WHERE status = 'waiting';
