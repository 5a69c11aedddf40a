"""PostgreSQL's text of the statements whose form differs between dialects (see `store/base.py`)."""

STATEMENTS = {
    "list_aggregate": "string_agg({expr}, ',' ORDER BY id)",
    # Units of work run side by side: a dispatcher's write locks its task row as it reads it, so a
    # recall or a reset of that task waits for the write to end (and then sees its deliveries), or the
    # write waits for them (and sees the task recalled, or gone).
    "row_lock": " FOR UPDATE",
    # Serializes one robot's batchSends for the rest of the transaction, across processes.
    "robot_minute_lock": "SELECT pg_advisory_xact_lock(hashtext(?))",
}
