"""Store operations behind the /api/v1 browsing views: a corp's users and departments, recent tasks.

Every view reads one page in one snapshot with a fixed number of statements, whatever the size of
the corp: users come in userid order, so a page's departments and unread counts are each one range
scan over an index keyed by (corp_id, userid), never a query per user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dingbox.store.base import Row, Tx
from dingbox.store.result_sql import outcome_counts
from dingbox.store.task_sql import TASK_COLUMNS, TaskRow


@dataclass(frozen=True)
class UserRow:
    userid: str
    name: str
    active: bool
    mobile: str | None
    title: str | None
    email: str | None
    dept_ids: list[int]
    unread: int


@dataclass(frozen=True)
class DepartmentRow:
    dept_id: int
    name: str
    parent_id: int  # 0 for the root
    members: int


@dataclass(frozen=True)
class TaskSummary:
    task: TaskRow
    outcome_counts: list[Row]  # (outcome, read, recalled, n) as result_sql.outcome_counts gives them


def corp_exists(tx: Tx, corp_id: str) -> bool:
    return tx.one("SELECT 1 FROM corps WHERE corp_id = ?", (corp_id,)) is not None


def users_page(tx: Tx, corp_id: str, *, after: str, limit: int) -> tuple[list[UserRow], bool] | None:
    """The corp's users with userid > `after`, in userid order, and whether more follow; None: no corp."""
    if not corp_exists(tx, corp_id):
        return None
    rows = tx.all(
        "SELECT userid, name, active, mobile, title, email FROM users"
        " WHERE corp_id = ? AND userid > ? ORDER BY userid LIMIT ?",
        (corp_id, after, limit + 1),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return [], False
    span = (corp_id, rows[0][0], rows[-1][0])
    depts: dict[str, list[int]] = {}
    for userid, dept_id in tx.all(
        "SELECT userid, dept_id FROM user_depts WHERE corp_id = ? AND userid >= ? AND userid <= ?"
        " ORDER BY userid, dept_id",
        span,
    ):
        depts.setdefault(userid, []).append(dept_id)
    # Users that left the org keep their messages, so the span may count inboxes no row here shows.
    unread: dict[str, int] = dict(
        tx.all(
            "SELECT userid, COUNT(*) FROM deliveries WHERE corp_id = ? AND userid >= ? AND userid <= ?"
            " AND outcome = 0 AND read_at IS NULL AND recalled = 0 GROUP BY userid",
            span,
        )
    )
    users = [
        UserRow(u, name, bool(active), mobile, title, email, depts.get(u, []), unread.get(u, 0))
        for u, name, active, mobile, title, email in rows
    ]
    return users, more


def departments(tx: Tx, corp_id: str) -> list[DepartmentRow] | None:
    """Every department of the corp with its direct member count; None when the corp is unknown."""
    rows = tx.records(
        DepartmentRow,
        "SELECT d.dept_id, d.name, d.parent_id,"
        " (SELECT COUNT(*) FROM user_depts u WHERE u.corp_id = d.corp_id AND u.dept_id = d.dept_id)"
        " AS members FROM departments d WHERE d.corp_id = ? ORDER BY d.dept_id",
        (corp_id,),
    )
    return rows or None  # every corp has its root department: none means no such corp


def inbox_known(tx: Tx, corp_id: str, userid: str) -> bool:
    """Whether an inbox exists: the user is in the org, or messages were delivered to that userid."""
    return (
        tx.one("SELECT 1 FROM users WHERE corp_id = ? AND userid = ?", (corp_id, userid)) is not None
        or tx.one(
            "SELECT 1 FROM deliveries WHERE corp_id = ? AND userid = ? AND outcome = 0 LIMIT 1",
            (corp_id, userid),
        )
        is not None
    )


def task_seq(tx: Tx, task_id: int) -> int | None:
    row = tx.one("SELECT seq FROM tasks WHERE task_id = ?", (task_id,))
    return None if row is None else int(row[0])


def tasks_page(
    tx: Tx,
    *,
    before_seq: int | None,
    limit: int,
    corp_id: str | None,
    agent_id: int | None,
    source: str | None,
    status: int | None,
) -> list[TaskSummary]:
    """Tasks newest first (by order of acceptance) with their outcome counts; one beyond `limit`
    tells that more exist (its counts are not read)."""
    where: list[str] = []
    params: list[Any] = []
    filters = {"corp_id": corp_id, "agent_id": agent_id, "source": source, "status": status}
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if status is not None and status < 2:
        # implied by status = 0 or 1, but SQLite only picks the partial index tasks_pending (seq)
        # WHERE status < 2 when the query states its condition: then unfinished tasks are found
        # without reading every finished one
        where.append("status < 2")
    if before_seq is not None:
        where.append("seq < ?")
        params.append(before_seq)
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    rows = tx.records(
        _with_reads,
        f"SELECT {TASK_COLUMNS}, read_count FROM tasks{condition} ORDER BY seq DESC LIMIT ?",
        (*params, limit + 1),
    )
    summaries = []
    for i, (task, read_count) in enumerate(rows):
        counts: list[Row] = []
        if i < limit:
            counted = _counted(task, read_count)
            counts = counted if counted is not None else outcome_counts(tx, task.seq)
        summaries.append(TaskSummary(task, counts))
    return summaries


def _with_reads(read_count: int, **columns: Any) -> tuple[TaskRow, int]:
    return TaskRow(**columns), read_count


def _counted(task: TaskRow, read_count: int) -> list[Row] | None:
    """A task's outcome counts from its counters, when every recipient decided so far was delivered
    (the counters then say everything; result_sql.result_lists relies on the same identities);
    None when other outcomes must be counted from its rows. A list of large sends is thereby read
    in a few rows, not one pass over each task's recipients."""
    if task.cursor != task.delivered:
        return None
    if task.recalled_at is not None:  # every copy is recalled, those delivered after the recall too
        return [(0, 0, 1, task.delivered)] if task.delivered else []
    groups = [(0, 0, 0, task.delivered - read_count), (0, 1, 0, read_count)]
    return [group for group in groups if group[3]]
