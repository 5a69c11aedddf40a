-- One index of every unfinished task in acceptance order serves the claim (it skips the few tasks in
-- flight), the backlog's size and age, and the task list's status filter. It replaces the two of
-- 0002: the planner read this kind of index for the claim anyway, and each index is one more entry
-- to write on every accept and claim.
DROP INDEX tasks_claimed;
DROP INDEX tasks_unclaimed;
CREATE INDEX tasks_pending ON tasks (seq) WHERE status < 2;
