-- The audit chain's head and the queue's depth, in one row of one table,
-- as on SQLite, where a commit writes one page for both instead of two.
-- Every writer takes this row first (store/backend.rs), so counting the
-- queue in it adds no wait.

ALTER TABLE audit_head RENAME TO heads;
ALTER TABLE heads RENAME COLUMN seq TO audit_seq;
ALTER TABLE heads RENAME COLUMN hash TO audit_hash;
ALTER TABLE heads ADD COLUMN queued BIGINT NOT NULL DEFAULT 0;
UPDATE heads SET queued = (SELECT queued FROM queue_depth WHERE id = 1) WHERE id = 1;
DROP TABLE queue_depth;

-- The triggers of V4 stay; their function now counts here.
CREATE OR REPLACE FUNCTION remedy_count_queued() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status = 'queued' THEN
        delta := 1;
    ELSE
        delta := -1;
    END IF;
    UPDATE heads SET queued = queued + delta WHERE id = 1;
    RETURN NULL;
END
$$;
