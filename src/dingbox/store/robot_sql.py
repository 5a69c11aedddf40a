"""Store operations of the robot one-to-one API: a batchSend's facts and rows, look-ups by
processQueryKey, read states and recall.

A batchSend answers with its invalid and flow-controlled recipients, so it is decided while the
request waits (`services/robots.py` composes the unit of work): the task row (finished at once,
status 2) and every recipient's delivery row commit together, and the per-robot minute count is read
in the same transaction that adds to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dingbox.clock import dingtalk_day
from dingbox.domain.pipeline import DecisionRow
from dingbox.store import delivery_sql, task_sql
from dingbox.store.base import Tx, lock, placeholders
from dingbox.store.task_sql import TASK_COLUMNS, PreparedTask, TaskRow, delivery_range


@dataclass(frozen=True)
class RobotBatch:
    task: PreparedTask
    corp_id: str
    agent_id: int
    robot_code: str
    userids: list[str]
    visible: frozenset[str] | None  # the app's visible users (None: the whole corp)


@dataclass(frozen=True)
class SentBatch:
    seq: int
    task_id: int
    decisions: list[DecisionRow]
    delivered: list[tuple[int, str]]  # (message_id, userid)


def write_send(tx: Tx, batch: RobotBatch, decisions: list[DecisionRow], now: float) -> SentBatch:
    """The batchSend's task, finished at once, and a delivery row per decided recipient."""
    seq, task_id = task_sql.insert_task(tx, batch.task, now)
    delivered = delivery_sql.write_decisions(
        tx, seq, batch.corp_id, batch.agent_id, 0, decisions, dingtalk_day(now), None, now
    )
    tx.execute(
        "UPDATE tasks SET status = 2, total = ?, cursor = ?, delivered = ?, finished_at = ? WHERE seq = ?",
        (len(decisions), len(decisions), len(delivered), now, seq),
    )
    return SentBatch(seq, task_id, decisions, delivered)


def reached_in_minute(tx: Tx, robot_code: str, minute: int) -> int:
    """Recipients the robot's sends accepted in this calendar minute delivered (recalls give none back).

    The robot's sends are serialized until this transaction ends (`robot_minute_lock`: on a store
    several processes write at once), so two of them never both see room for one more."""
    lock(tx, "robot_minute_lock", (robot_code,))
    row = tx.one(
        "SELECT COALESCE(SUM(delivered), 0) FROM tasks WHERE source = 'robot' AND robot_code = ?"
        " AND accepted_at >= ? AND accepted_at < ?",
        (robot_code, minute * 60, (minute + 1) * 60),
    )
    return int(row[0]) if row else 0


def task_by_query_key(tx: Tx, process_query_key: str) -> TaskRow | None:
    return tx.record(
        TaskRow,
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE process_query_key = ? AND source = 'robot'",
        (process_query_key,),
    )


def tasks_by_query_keys(tx: Tx, keys: Sequence[str]) -> dict[str, TaskRow]:
    """The robot tasks of the keys that name one (at most 20 keys: one IN list)."""
    tasks = tx.records(
        TaskRow,
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE process_query_key IN ({placeholders(len(keys))})"
        " AND source = 'robot'",
        tuple(keys),
    )
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
