"""PostgreSQL's text of the statements whose form differs between dialects (see `store/base.py`)."""

# Accepts and claims of one app take turns on an advisory lock keyed by the app (`claim_sql`): an
# accept holds it shared while its task gets a `seq` and commits, a claim exclusively while it checks
# that it takes the app's oldest tasks. Keys are hashed from the agent_id (a collision only makes two
# apps wait for each other); the array is sorted by the caller, so locks are always taken in one order.
_APP_LOCK = "{fn}(hashtextextended('dingbox app ' || k, 0)) FROM unnest(?::bigint[]) AS k"

STATEMENTS = {
    "list_aggregate": "string_agg({expr}, ',' ORDER BY id)",
    # Serializes one robot's batchSends for the rest of the transaction, across processes.
    "robot_minute_lock": "SELECT pg_advisory_xact_lock(hashtextextended('dingbox robot ' || ?, 0))",
    "accept_gate": "SELECT " + _APP_LOCK.format(fn="pg_advisory_xact_lock_shared"),
    "claim_gate": "SELECT " + _APP_LOCK.format(fn="pg_advisory_xact_lock"),
    # A task's row before its deliveries' (marking one read): the order recall and dispatch take
    # them in, so two of them never wait for each other.
    "lock_task": "SELECT 1 FROM tasks WHERE seq = ? FOR UPDATE",
    # Candidate tasks of a claim: rows another claim has locked are skipped, not waited for.
    "claim_rows": (
        "SELECT {columns} FROM tasks WHERE seq IN ({marks}) AND claimed_by IS NULL AND status < 2"
        " ORDER BY seq FOR UPDATE SKIP LOCKED"
    ),
    # A writer's own tasks, locked in seq order until its write commits: a takeover, a recall or a
    # reset of them waits for the write to end (and then sees its deliveries).
    "hold_tasks": (
        "SELECT seq, cursor, delivered, recalled_at, total FROM tasks"
        " WHERE seq IN ({marks}) AND claimed_by = ? AND status < 2 ORDER BY seq FOR UPDATE"
    ),
    # A claim's owner is `<claimant>/<loop>`, and a claimant is alive while a session of its process
    # carries its name (`presence.py`); the server ends that session when the process dies.
    "live_claimants": "SELECT application_name FROM pg_stat_activity WHERE application_name <> ''",
    "release_claims_of": (
        "WITH dead AS (SELECT seq FROM tasks WHERE status < 2 AND claimed_by = ? FOR UPDATE SKIP LOCKED)"
        " UPDATE tasks SET claimed_by = NULL, claimed_at = NULL FROM dead WHERE tasks.seq = dead.seq"
        " RETURNING tasks.seq"
    ),
}
