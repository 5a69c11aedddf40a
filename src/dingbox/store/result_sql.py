"""Store operations that read deliveries back: send results, task recipients, inboxes, messages, reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dingbox.domain.identifiers import names_nothing
from dingbox.store.base import Row, Tx, lock
from dingbox.store.task_sql import POS_BITS, TaskRow, delivery_range, task_by_id

MESSAGE_COLUMNS = (
    "d.id, t.seq, d.corp_id, d.userid, d.open_conversation_id, t.source, t.agent_id, t.robot_code, t.task_id,"
    " t.process_query_key, t.template_id, t.template_data, t.msgtype, t.msg, t.status_bar, d.created_at,"
    " d.read_at, d.recalled"
)
_FROM = " FROM deliveries d JOIN tasks t ON t.seq = d.task_seq"


@dataclass(frozen=True)
class MessageRow:
    id: int
    seq: int
    corp_id: str
    userid: str | None
    open_conversation_id: str | None
    source: str
    agent_id: int | None
    robot_code: str | None
    task_id: int
    process_query_key: str | None
    template_id: str | None
    template_data: str | None
    msgtype: str
    msg: str
    status_bar: str | None
    created_at: float
    read_at: float | None
    recalled: int


@dataclass(frozen=True)
class ResultLists:
    """A task's recipients by getsendresult list, in decision order; forbidden as (userid, reason, code)."""

    unread: list[str]
    read: list[str]
    forbidden: list[tuple[str, str, str | None]]
    invalid: list[str]
    failed: list[str]


# Each list is aggregated in C from the task's stretch of the table: a 100,000-recipient result would
# otherwise build 100,000 row tuples in Python. Userids hold no commas or spaces (the org file
# forbids them), so they join and split safely. The task's own counters say which lists can be
# non-empty, and when every recipient is in one list no per-row condition is evaluated at all.
# Each list comes out in decision order (the statement `list_aggregate` of each dialect).
_LISTS = {
    "unread": ("outcome = 0 AND read_at IS NULL", "userid"),
    "read": ("outcome = 0 AND read_at IS NOT NULL", "userid"),
    "forbidden": ("outcome = 1", "userid || ' ' || reason || ' ' || COALESCE(code, '-')"),
    "invalid": ("outcome = 2", "userid"),
    "failed": ("outcome = 3", "userid"),
}


def result_lists(tx: Tx, task_seq: int) -> ResultLists:
    counters = tx.one("SELECT cursor, delivered, read_count FROM tasks WHERE seq = ?", (task_seq,))
    decided, delivered, read = counters or (0, 0, 0)
    sizes = {"unread": delivered - read, "read": read, "other": decided - delivered}
    wanted = [name for name in _LISTS if sizes.get(name, sizes["other"]) > 0]
    found: dict[str, list[str]] = {name: [] for name in _LISTS}
    if wanted:
        aggregate = tx.sql("list_aggregate")
        columns = []
        for name in wanted:
            condition, expr = _LISTS[name]
            only_list = sizes.get(name, -1) == decided
            columns.append(
                aggregate.format(expr=expr if only_list else f"CASE WHEN {condition} THEN {expr} END")
            )
        row = tx.one(
            f"SELECT {', '.join(columns)} FROM deliveries WHERE id >= ? AND id < ?", delivery_range(task_seq)
        )
        for name, text in zip(wanted, row or (), strict=False):
            found[name] = text.split(",") if text else []
    forbidden = []
    for item in found["forbidden"]:
        userid, reason, code = item.split(" ")
        forbidden.append((userid, reason, None if code == "-" else code))
    return ResultLists(found["unread"], found["read"], forbidden, found["invalid"], found["failed"])


# The recipient outcomes of the Task object, as conditions on a delivery row.
OUTCOME_CONDITIONS = {
    "delivered": "outcome = 0 AND read_at IS NULL AND recalled = 0",
    "read": "outcome = 0 AND read_at IS NOT NULL AND recalled = 0",
    "recalled": "outcome = 0 AND recalled = 1",
    "forbidden": "outcome = 1",
    "invalid": "outcome = 2",
    "failed": "outcome = 3",
}


def recipient_page(
    tx: Tx, task_seq: int, cursor: int, limit: int, outcome: str | None = None, reason: str | None = None
) -> list[Row]:
    """(pos, userid, outcome, reason, code, id, read_at, recalled) from position `cursor` on, of the
    recipients with that outcome (a name of `OUTCOME_CONDITIONS`) and reason when given."""
    low, high = delivery_range(task_seq)
    where, params = "", []
    if outcome is not None:
        if outcome not in OUTCOME_CONDITIONS:
            return []  # no recipient has an outcome of another name
        where += f" AND {OUTCOME_CONDITIONS[outcome]}"
    if reason is not None:
        if names_nothing(reason):
            return []  # no reason holds a NUL (and PostgreSQL could not compare one)
        where += " AND reason = ?"
        params.append(reason)
    return tx.all(
        "SELECT pos, userid, outcome, reason, code, id, read_at, recalled FROM deliveries"
        f" WHERE id >= ? AND id < ?{where} ORDER BY id LIMIT ?",
        (low + cursor, high, *params, limit),
    )


def task_detail(
    tx: Tx, task_id: int, cursor: int, limit: int, outcome: str | None = None, reason: str | None = None
) -> tuple[TaskRow, list[Row], list[Row]] | None:
    """(task, outcome counts, recipients from `cursor`) read in one snapshot, so they agree."""
    task = task_by_id(tx, task_id)
    if task is None:
        return None
    page = recipient_page(tx, task.seq, cursor, limit, outcome, reason)
    return task, outcome_counts(tx, task.seq), page


def outcome_counts(tx: Tx, task_seq: int) -> list[Row]:
    """(outcome, read, recalled, n) groups of a task's recipients."""
    return tx.all(
        "SELECT outcome, read_at IS NOT NULL, recalled, COUNT(*) FROM deliveries WHERE id >= ? AND id < ?"
        " GROUP BY outcome, read_at IS NOT NULL, recalled",
        delivery_range(task_seq),
    )


def message_by_id(tx: Tx, message_id: int) -> MessageRow | None:
    return tx.record(
        MessageRow, f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE d.id = ? AND d.outcome = 0", (message_id,)
    )


def inbox_page(
    tx: Tx,
    corp_id: str,
    userid: str,
    *,
    limit: int,
    before: MessageRow | None,
    source: str | None,
    unread: bool,
) -> list[MessageRow]:
    """Newest first (created_at, seq, id, descending; a delivery id begins with its task's seq, so
    (created_at, id) is that order and the `deliveries_inbox` index gives it without a sort); one row
    beyond `limit` tells that more exist."""
    where = ["d.corp_id = ?", "d.userid = ?", "d.outcome = 0"]
    params: list[Any] = [corp_id, userid]
    if source:
        where.append("t.source = ?")
        params.append(source)
    if unread:
        where.append("d.read_at IS NULL AND d.recalled = 0")
    if before is not None:
        where.append("(d.created_at, d.id) < (?, ?)")
        params += [before.created_at, before.id]
    rows = tx.all(
        f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE {' AND '.join(where)}"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT ?",
        (*params, limit + 1),
    )
    return [MessageRow(*r) for r in rows]


def mark_read(tx: Tx, message_id: int, now: float) -> tuple[MessageRow | None, bool]:
    """Set read_at once (idempotent) and count it on the task; the caller checks recall before asking.
    Gives the message and whether this call read it.

    The task's row is locked before the delivery's, as a recall locks them: the other order deadlocked
    against a recall on PostgreSQL (resolved only by its deadlock check, a second later)."""
    lock(tx, "lock_task", (message_id >> POS_BITS,))
    changed = tx.execute(
        "UPDATE deliveries SET read_at = ? WHERE id = ? AND outcome = 0 AND read_at IS NULL AND recalled = 0",
        (now, message_id),
    )
    if changed:
        tx.execute("UPDATE tasks SET read_count = read_count + 1 WHERE seq = ?", (message_id >> POS_BITS,))
    return message_by_id(tx, message_id), changed > 0
