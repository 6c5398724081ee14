-- How many runs are queued, kept as runs enter and leave the queue: every
-- admission checks the queue's bound, and counting the queued runs walks
-- them all, under a storm (a deep queue) the slowest step of each commit.
-- Every writer already takes the audit head's row first, so this one row
-- adds no wait of its own.

CREATE TABLE queue_depth (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    queued BIGINT NOT NULL
);
INSERT INTO queue_depth (id, queued) SELECT 1, count(*) FROM runs WHERE status = 'queued';

-- A run enters the queue at its insert, counted there (store/queue.rs,
-- `insert_run`, the one place runs are inserted), as on SQLite. It leaves
-- the queue, or comes back to it, in many places: those the triggers count,
-- each firing only where a run's place in the queue changes (its WHEN).
CREATE FUNCTION remedy_count_queued() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status = 'queued' THEN
        delta := 1;
    ELSE
        delta := -1;
    END IF;
    UPDATE queue_depth SET queued = queued + delta WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER queue_depth_on_delete AFTER DELETE ON runs
FOR EACH ROW WHEN (OLD.status = 'queued')
EXECUTE FUNCTION remedy_count_queued();

CREATE TRIGGER queue_depth_on_update AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN ((OLD.status = 'queued') <> (NEW.status = 'queued'))
EXECUTE FUNCTION remedy_count_queued();
