"""PostgreSQL's text of the statements whose form differs between dialects (see `store/base.py`)."""

STATEMENTS = {
    "list_aggregate": "string_agg({expr}, ',' ORDER BY id)",
    # Serializes one robot's batchSends for the rest of the transaction, across processes.
    "robot_minute_lock": "SELECT pg_advisory_xact_lock(hashtext(?))",
}
