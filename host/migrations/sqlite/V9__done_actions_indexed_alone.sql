-- `actions_by_time` held every action by status and time, so an action
-- moved in it as its record did: in at its intent, out again at its result
-- into the range of that result. Only done actions are looked up by time
-- (a plugin's recent actions, which keep it from flapping), so the index
-- holds those alone: an action enters it once, when it is done, and a
-- dry-run's actions, or refused ones, never do.

DROP INDEX actions_by_time;
CREATE INDEX actions_done ON actions (intent_ms) WHERE status = 'done';
