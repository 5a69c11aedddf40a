"""PostgreSQL's text of the statements whose form differs between dialects (see `store/base.py`)."""

STATEMENTS = {
    "list_aggregate": "string_agg({expr}, ',' ORDER BY id)",
}
