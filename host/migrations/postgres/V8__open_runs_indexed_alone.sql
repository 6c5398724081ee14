-- As on SQLite: queued and waiting runs each in an index of their own, in
-- place of every run by status, so a run's end writes none of them.

DROP INDEX runs_by_status;
CREATE INDEX runs_queued ON runs (created_ms) WHERE status = 'queued';
CREATE INDEX runs_waiting ON runs (due_ms) WHERE status = 'waiting';
