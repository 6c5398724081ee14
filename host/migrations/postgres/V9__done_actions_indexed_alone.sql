-- As on SQLite: only done actions are looked up by time, so only they are
-- in the index of times, entering it once, when they are done.

DROP INDEX actions_by_time;
CREATE INDEX actions_done ON actions (intent_ms) WHERE status = 'done';
