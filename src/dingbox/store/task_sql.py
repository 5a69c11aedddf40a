"""Store operations on send tasks: accept, look up, progress, recall, status bar, reset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from dingbox import ids
from dingbox.store.base import Tx, lock, placeholders

TASK_COLUMNS = (
    "seq, task_id, source, corp_id, agent_id, app_type, request, msgtype, msg, content_hash, userids,"
    " dept_ids, to_all_user, template_id, template_data, robot_code, process_query_key, open_conversation_id,"
    " warnings, accepted_at, not_before, status, total, cursor, delivered, invalid_dept_ids, finished_at,"
    " recalled_at, status_bar"
)


@dataclass(slots=True)  # built on every send: slots and no frozen __setattr__ detour
class NewTask:
    source: str
    corp_id: str
    agent_id: int | None
    app_type: str
    request: dict[str, Any]
    msgtype: str
    msg: bytes  # canonical JSON
    content_hash: bytes | None
    userids: list[str]
    dept_ids: list[str]
    to_all_user: bool
    warnings: list[str]
    not_before: float
    template_id: str | None = None
    template_data: dict[str, Any] | None = None
    robot_code: str | None = None
    process_query_key: str | None = None
    open_conversation_id: str | None = None


@dataclass(frozen=True)
class TaskRow:
    seq: int
    task_id: int
    source: str
    corp_id: str
    agent_id: int | None
    app_type: str
    request: str
    msgtype: str
    msg: str
    content_hash: bytes | None
    userids: str
    dept_ids: str
    to_all_user: int
    template_id: str | None
    template_data: str | None
    robot_code: str | None
    process_query_key: str | None
    open_conversation_id: str | None
    warnings: str
    accepted_at: float
    not_before: float
    status: int
    total: int | None
    cursor: int
    delivered: int
    invalid_dept_ids: str
    finished_at: float | None
    recalled_at: float | None
    status_bar: str | None

    @property
    def progress_in_percent(self) -> int:
        if self.status == 2:
            return 100
        if not self.total:
            return 0
        return min(99, self.cursor * 100 // self.total)

    @property
    def is_isv(self) -> bool:
        return self.app_type == "isv"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# The columns a PreparedTask holds, in its order.
_PREPARED = (
    "source, corp_id, agent_id, app_type, request, msgtype, msg, content_hash, userids, dept_ids,"
    " to_all_user, template_id, template_data, robot_code, process_query_key, open_conversation_id, warnings"
).split(", ")
_INSERT_TASKS = f"INSERT INTO tasks (task_id, {', '.join(_PREPARED)}, accepted_at, not_before) VALUES "
_TASK_VALUES = f"({placeholders(len(_PREPARED) + 3)})"  # task_id, the prepared columns, the two times
_ROWS_PER_INSERT = 40  # 800 parameters a statement


@dataclass(slots=True)
class PreparedTask:
    """A task's column values, serialized by the accepting request rather than by the writer thread,
    where every bit of Python waits for the GIL; the writer adds task_id and accepted_at."""

    columns: tuple[Any, ...]
    not_before: float

    @classmethod
    def of(cls, task: NewTask) -> PreparedTask:
        columns = (
            task.source,
            task.corp_id,
            task.agent_id,
            task.app_type,
            orjson.dumps(task.request).decode(),
            task.msgtype,
            task.msg.decode(),
            task.content_hash,
            orjson.dumps(task.userids).decode(),
            orjson.dumps(task.dept_ids).decode(),
            int(task.to_all_user),
            task.template_id,
            None if task.template_data is None else _dumps(task.template_data),
            task.robot_code,
            task.process_query_key,
            task.open_conversation_id,
            orjson.dumps(task.warnings).decode(),
        )
        return cls(columns, task.not_before)

    @property
    def agent_id(self) -> int | None:
        agent_id: int | None = self.columns[2]
        return agent_id

    def row(self, seq: int, task_id: int, accepted_at: float) -> TaskRow:
        """The task as `insert_tasks` stored it, without reading it back."""
        return TaskRow(
            seq=seq,
            task_id=task_id,
            **dict(zip(_PREPARED, self.columns, strict=True)),
            accepted_at=accepted_at,
            not_before=self.not_before,
            status=0,
            total=None,
            cursor=0,
            delivered=0,
            invalid_dept_ids="[]",
            finished_at=None,
            recalled_at=None,
            status_bar=None,
        )

    def params(self, task_id: int, accepted_at: float) -> tuple[Any, ...]:
        return (task_id, *self.columns, accepted_at, self.not_before)


def insert_tasks(tx: Tx, tasks: list[PreparedTask], accepted_at: float) -> list[tuple[int, int]]:
    """Record accepted tasks, many per statement, all with the acceptance time `accepted_at` (the
    virtual time of this transaction).

    Returns (seq, task_id) per task, in order. Tasks whose task_id clashed with a stored one are drawn
    again one by one.

    Where accepts run beside claims (a shared store), the tasks' apps are held shared until the commit
    (`accept_gate`): a claim of an app waits for them, so a task that draws a lower `seq` but commits
    later is never overtaken by its app's next task (`claim_sql`).
    """
    apps = sorted({task.agent_id for task in tasks if task.agent_id is not None})
    if apps:
        lock(tx, "accept_gate", (apps,))
    results: list[tuple[int, int]] = []
    for start in range(0, len(tasks), _ROWS_PER_INSERT):
        chunk = tasks[start : start + _ROWS_PER_INSERT]
        task_ids = ids.task_ids(len(chunk))
        params = [
            p
            for task, task_id in zip(chunk, task_ids, strict=True)
            for p in task.params(task_id, accepted_at)
        ]
        sql = (
            _INSERT_TASKS
            + ",".join([_TASK_VALUES] * len(chunk))
            + " ON CONFLICT (task_id) DO NOTHING RETURNING task_id, seq"
        )
        placed: dict[int, int] = dict(tx.all(sql, params))
        for task, task_id in zip(chunk, task_ids, strict=True):
            seq = placed.get(task_id)
            results.append((int(seq), task_id) if seq is not None else insert_task(tx, task, accepted_at))
    return results


def insert_task(tx: Tx, task: PreparedTask, accepted_at: float) -> tuple[int, int]:
    """One task, with a fresh task_id drawn until it is unique; gives (seq, task_id)."""
    while True:
        task_id = ids.task_id()
        row = tx.one(
            _INSERT_TASKS + _TASK_VALUES + " ON CONFLICT (task_id) DO NOTHING RETURNING seq",
            task.params(task_id, accepted_at),
        )
        if row is not None:
            return int(row[0]), task_id


POS_BITS = 24  # a task decides at most 2^24 - 1 recipients; that many fit in a message id


def delivery_id(task_seq: int, pos: int) -> int:
    """A delivery's id (the recipient's message id): its task's seq and its position, in one integer."""
    return (task_seq << POS_BITS) | pos


def delivery_range(task_seq: int) -> tuple[int, int]:
    """[low, high) of a task's delivery ids."""
    return task_seq << POS_BITS, (task_seq + 1) << POS_BITS


def task_by_id(tx: Tx, task_id: int) -> TaskRow | None:
    return tx.record(TaskRow, f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))


def recall_task(tx: Tx, seq: int, now: float) -> None:
    """Recall every delivered copy; copies delivered later by the dispatcher are written recalled."""
    tx.execute("UPDATE tasks SET recalled_at = COALESCE(recalled_at, ?) WHERE seq = ?", (now, seq))
    tx.execute(
        "UPDATE deliveries SET recalled = 1 WHERE id >= ? AND id < ? AND outcome = 0", delivery_range(seq)
    )


def update_status_bar(tx: Tx, seq: int, bar: dict[str, Any]) -> None:
    tx.execute("UPDATE tasks SET status_bar = ? WHERE seq = ?", (_dumps(bar), seq))


def pending_stats(tx: Tx) -> tuple[int, float | None]:
    """(tasks not finished, when the oldest of them became ready), off the `tasks_pending` index."""
    row = tx.one("SELECT COUNT(*) FROM tasks WHERE status < 2")
    first = tx.one("SELECT not_before FROM tasks WHERE status < 2 ORDER BY seq LIMIT 1")
    return (int(row[0]) if row else 0), (float(first[0]) if first else None)


class TaskTotals(NamedTuple):
    accepted: int
    pending: int
    decided: int  # recipients decided by dispatchers, whatever the outcome
    delivered: int


def task_totals(tx: Tx) -> TaskTotals:
    """Totals over every stored task, for /metrics."""
    totals = tx.record(
        TaskTotals,
        "SELECT COUNT(*) AS accepted, COALESCE(SUM(CASE WHEN status < 2 THEN 1 ELSE 0 END), 0) AS pending,"
        " COALESCE(SUM(cursor), 0) AS decided, COALESCE(SUM(delivered), 0) AS delivered FROM tasks",
    )
    return totals or TaskTotals(0, 0, 0, 0)


def reset_traffic(tx: Tx) -> None:
    # tasks first: a dispatcher's write in flight holds its task's row (`claim_sql.hold`), so the reset waits
    # for it to commit and then deletes what it wrote too
    for table in ("tasks", "deliveries", "minute_counts", "content_days", "tokens"):
        tx.execute(f"DELETE FROM {table}")
    tx.execute("DELETE FROM meta WHERE key = 'clock'")
