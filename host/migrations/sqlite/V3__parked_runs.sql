-- A run watching between rounds is parked: `waiting`, with the time its
-- next round is due, and no worker holds it.

ALTER TABLE runs ADD COLUMN due_ms INTEGER;
