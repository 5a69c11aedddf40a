"""SQLite's text of the statements whose form differs between dialects (see `store/base.py`)."""

STATEMENTS = {
    # SQLite reads a rowid range in rowid order and aggregates rows as it reads them, so the list
    # comes out in decision order without an ORDER BY.
    "list_aggregate": "group_concat({expr}, ',')",
    # One writer: a unit of work never runs beside another, so what it read stays as read until it ends.
    "row_lock": "",
    # One writer: the transaction that reads a robot's minute count is the only one writing.
    "robot_minute_lock": "SELECT ?",
}
