-- Dispatchers claim the oldest unclaimed pending tasks: read straight off tasks_unclaimed in seq
-- order, a claim costs the same whatever the backlog. tasks_claimed holds the few tasks in flight;
-- together they give the oldest pending task at once. The old (status, seq) index answered nothing
-- these do not.
CREATE INDEX tasks_unclaimed ON tasks (seq) WHERE status < 2 AND claimed_by IS NULL;
CREATE INDEX tasks_claimed ON tasks (seq) WHERE status < 2 AND claimed_by IS NOT NULL;
DROP INDEX tasks_pending;
