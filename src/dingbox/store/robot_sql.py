"""Store operations of the robot one-to-one API: a batchSend decided and written in one transaction,
look-ups by processQueryKey, read states and recall.

A batchSend answers with its invalid and flow-controlled recipients, so it is decided while the
request waits: the task row (finished at once, status 2) and every recipient's delivery row commit
together, and the per-robot minute count is read in the same transaction that adds to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dingbox.clock import calendar_minute, dingtalk_day
from dingbox.domain.pipeline import DecisionRow, RecipientRow
from dingbox.store import delivery_sql, dispatch_sql, task_sql
from dingbox.store.base import Tx, placeholders
from dingbox.store.task_sql import TASK_COLUMNS, PreparedTask, TaskRow, delivery_range

# (recipients, the app's visible users or None, recipients this robot reached this minute) -> decisions
Decide = Callable[[Sequence[RecipientRow], frozenset[str] | None, int], list[DecisionRow]]


@dataclass(frozen=True)
class RobotBatch:
    task: PreparedTask
    corp_id: str
    agent_id: int
    robot_code: str
    userids: list[str]
    visible: frozenset[str] | None  # the app's visible users (None: the whole corp)
    count_minute: bool  # read the robot's minute count (only a minute limit needs it)


@dataclass(frozen=True)
class SentBatch:
    seq: int
    task_id: int
    decisions: list[DecisionRow]
    delivered: list[tuple[int, str]]  # (message_id, userid)


def record_send(tx: Tx, batch: RobotBatch, decide: Decide, clock: Callable[[], float]) -> SentBatch:
    now = clock()
    plan = dispatch_sql.resolve(tx, batch.corp_id, batch.userids, [], False)
    reached = _reached_in_minute(tx, batch.robot_code, calendar_minute(now)) if batch.count_minute else 0
    decisions = decide(plan.recipients, batch.visible, reached)
    seq, task_id = task_sql.insert_task(tx, batch.task, now)
    delivered = delivery_sql.write_decisions(
        tx, seq, batch.corp_id, batch.agent_id, 0, decisions, dingtalk_day(now), None, now
    )
    tx.execute(
        "UPDATE tasks SET status = 2, total = ?, cursor = ?, delivered = ?, finished_at = ? WHERE seq = ?",
        (len(decisions), len(decisions), len(delivered), now, seq),
    )
    return SentBatch(seq, task_id, decisions, delivered)


def _reached_in_minute(tx: Tx, robot_code: str, minute: int) -> int:
    """Recipients the robot's sends accepted in this calendar minute delivered (recalls give none back)."""
    row = tx.one(
        "SELECT COALESCE(SUM(delivered), 0) FROM tasks WHERE source = 'robot' AND robot_code = ?"
        " AND accepted_at >= ? AND accepted_at < ?",
        (robot_code, minute * 60, (minute + 1) * 60),
    )
    return int(row[0]) if row else 0


def task_by_query_key(tx: Tx, process_query_key: str) -> TaskRow | None:
    row = tx.one(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE process_query_key = ? AND source = 'robot'",
        (process_query_key,),
    )
    return None if row is None else TaskRow(*row)


def tasks_by_query_keys(tx: Tx, keys: Sequence[str]) -> dict[str, TaskRow]:
    """The robot tasks of the keys that name one (at most 20 keys: one IN list)."""
    rows = tx.all(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE process_query_key IN ({placeholders(len(keys))})"
        " AND source = 'robot'",
        tuple(keys),
    )
    tasks = [TaskRow(*row) for row in rows]
    return {task.process_query_key: task for task in tasks if task.process_query_key is not None}


def read_states(tx: Tx, task_seq: int) -> list[tuple[str, str, float | None]]:
    """(userid, name, read_at) of each recipient the task delivered to, in decision order."""
    return [
        (str(userid), str(name), read_at)
        for userid, name, read_at in tx.all(
            "SELECT d.userid, COALESCE(u.name, d.userid), d.read_at FROM deliveries d"
            " LEFT JOIN users u ON u.corp_id = d.corp_id AND u.userid = d.userid"
            " WHERE d.id >= ? AND d.id < ? AND d.outcome = 0 ORDER BY d.id",
            delivery_range(task_seq),
        )
    ]


def recall(tx: Tx, tasks: Sequence[TaskRow], now: float) -> list[tuple[TaskRow, list[int]]]:
    """Recall every message of the tasks; gives the tasks this call recalled with their message ids."""
    recalled: list[tuple[TaskRow, list[int]]] = []
    for task in tasks:
        row = tx.one("SELECT recalled_at FROM tasks WHERE seq = ?", (task.seq,))
        if row is None or row[0] is not None:
            continue
        task_sql.recall_task(tx, task.seq, now)
        ids = [
            int(r[0])
            for r in tx.all(
                "SELECT id FROM deliveries WHERE id >= ? AND id < ? AND outcome = 0 ORDER BY id",
                delivery_range(task.seq),
            )
        ]
        recalled.append((task, ids))
    return recalled
