-- How many runs are queued, kept as runs enter and leave the queue: every
-- admission checks the queue's bound, and counting the queued runs walks
-- them all, under a storm (a deep queue) the slowest step of each commit.

CREATE TABLE queue_depth (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    queued INTEGER NOT NULL
);
INSERT INTO queue_depth (id, queued) SELECT 1, count(*) FROM runs WHERE status = 'queued';

-- A run enters the queue at its insert, counted there (store/queue.rs,
-- `insert_run`, the one place runs are inserted): a trigger on insert made
-- each insert inside an admission's savepoint keep a statement journal,
-- which cost 50-alert admission a quarter of its rate. It leaves the queue,
-- or comes back to it, in many places: those the triggers count, each
-- firing only where a run's place in the queue changes (its WHEN).
CREATE TRIGGER queue_depth_on_delete AFTER DELETE ON runs
WHEN OLD.status = 'queued'
BEGIN
    UPDATE queue_depth SET queued = queued - 1 WHERE id = 1;
END;

CREATE TRIGGER queue_depth_on_update AFTER UPDATE OF status ON runs
WHEN (OLD.status = 'queued') <> (NEW.status = 'queued')
BEGIN
    UPDATE queue_depth SET queued = queued + (NEW.status = 'queued') - (OLD.status = 'queued')
    WHERE id = 1;
END;
