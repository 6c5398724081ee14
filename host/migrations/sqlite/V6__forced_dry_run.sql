-- Why a run only plans though its route acts (its route's circuit breaker
-- was open when it was first taken), kept apart from `reason`: a run that
-- watches is parked with a reason of its own, and its end's reason leads
-- with this note even when the breaker shut before the run resumed.

ALTER TABLE runs ADD COLUMN forced_dry_run TEXT;
