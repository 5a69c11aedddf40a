"""SQLite's text of the statements whose form differs between dialects (see `store/base.py`)."""

STATEMENTS = {
    # SQLite reads a rowid range in rowid order and aggregates rows as it reads them, so the list
    # comes out in decision order without an ORDER BY.
    "list_aggregate": "group_concat({expr}, ',')",
    # One writer: the transaction that reads a robot's minute count is the only one writing.
    "robot_minute_lock": "",
    # One writer runs every unit of work in turn and one process owns the file: accepts and claims
    # never overlap and no row needs locking, so there is no gate (an empty statement is not run),
    # and no other process's claims to release.
    "accept_gate": "",
    "lock_task": "",  # one writer: nothing runs beside a unit of work
    "claim_gate": "",
    "claim_rows": "SELECT {columns} FROM tasks WHERE seq IN ({marks}) AND claimed_by IS NULL AND status < 2",
    "hold_tasks": (
        "SELECT seq, cursor, delivered, recalled_at, total FROM tasks"
        " WHERE seq IN ({marks}) AND claimed_by = ? AND status < 2"
    ),
}
