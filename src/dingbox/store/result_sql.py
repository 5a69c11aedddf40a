"""Store operations that read deliveries back: send results, task recipients, inboxes, messages, reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dingbox.store.base import Row, Tx

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


def result_rows(tx: Tx, task_seq: int) -> list[Row]:
    """(userid, outcome, reason, code, read_at) of every recipient, in decision order."""
    return tx.all(
        "SELECT userid, outcome, reason, code, read_at FROM deliveries WHERE task_seq = ? ORDER BY pos",
        (task_seq,),
    )


def recipient_page(tx: Tx, task_seq: int, cursor: int, limit: int) -> list[Row]:
    """(pos, userid, outcome, reason, code, id, read_at, recalled) from position `cursor` on."""
    return tx.all(
        "SELECT pos, userid, outcome, reason, code, id, read_at, recalled FROM deliveries"
        " WHERE task_seq = ? AND pos >= ? ORDER BY pos LIMIT ?",
        (task_seq, cursor, limit),
    )


def outcome_counts(tx: Tx, task_seq: int) -> list[Row]:
    """(outcome, read, recalled, n) groups of a task's recipients."""
    return tx.all(
        "SELECT outcome, read_at IS NOT NULL, recalled, COUNT(*) FROM deliveries WHERE task_seq = ?"
        " GROUP BY outcome, read_at IS NOT NULL, recalled",
        (task_seq,),
    )


def message_by_id(tx: Tx, message_id: int) -> MessageRow | None:
    row = tx.one(f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE d.id = ? AND d.outcome = 0", (message_id,))
    return None if row is None else MessageRow(*row)


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
    """Newest first (created_at, seq, id, descending); one row beyond `limit` tells that more exist."""
    where = ["d.corp_id = ?", "d.userid = ?", "d.outcome = 0"]
    params: list[Any] = [corp_id, userid]
    if source:
        where.append("t.source = ?")
        params.append(source)
    if unread:
        where.append("d.read_at IS NULL AND d.recalled = 0")
    if before is not None:
        where.append("(d.created_at < ? OR (d.created_at = ? AND (t.seq < ? OR (t.seq = ? AND d.id < ?))))")
        params += [before.created_at, before.created_at, before.seq, before.seq, before.id]
    rows = tx.all(
        f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE {' AND '.join(where)}"
        " ORDER BY d.created_at DESC, t.seq DESC, d.id DESC LIMIT ?",
        (*params, limit + 1),
    )
    return [MessageRow(*r) for r in rows]


def mark_read(tx: Tx, message_id: int, now: float) -> MessageRow | None:
    """Set read_at once (idempotent); the caller checks recall before asking."""
    tx.execute(
        "UPDATE deliveries SET read_at = ? WHERE id = ? AND outcome = 0 AND read_at IS NULL AND recalled = 0",
        (now, message_id),
    )
    return message_by_id(tx, message_id)
