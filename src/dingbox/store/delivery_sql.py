"""Writing decided recipients: one deliveries row each, a delivered row being that recipient's message.

The shape of a delivery row lives here once, for every source that writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from dingbox.domain.pipeline import DecisionRow, Outcome
from dingbox.store.base import Tx
from dingbox.store.task_sql import delivery_id

_COLUMNS = (
    "id",
    "task_seq",
    "pos",
    "corp_id",
    "userid",
    "agent_id",
    "outcome",
    "reason",
    "code",
    "day",
    "content_hash",
    "created_at",
    "recalled",
)
Row = tuple[object, ...]


def delivery_rows(
    task_seq: int,
    corp_id: str,
    agent_id: int | None,
    pos: int,
    decisions: Sequence[DecisionRow | None],
    day: int,
    content_hash: bytes | None,
    now: float,
    recalled: int = 0,
) -> tuple[list[Row], list[list[int | str]], list[int]]:
    """(rows, [message_id, userid] of the delivered, recipients per outcome) of decisions taken from
    position `pos` on; a None decision (a recipient this task already delivered) takes its position
    and writes nothing.

    `content_hash` goes on delivered rows only: it is what the same-content rule and the daily count read.
    """
    base = delivery_id(task_seq, 0)
    rows: list[Row] = []
    delivered: list[list[int | str]] = []
    counts = [0, 0, 0, 0]
    for at, decision in enumerate(decisions, pos):
        if decision is None:
            continue
        userid, outcome, reason, code = decision
        counts[outcome] += 1
        hashed: bytes | None = None
        recall = 0
        if outcome == Outcome.DELIVERED:
            delivered.append([base | at, userid])
            hashed, recall = content_hash, recalled
        row = (
            base | at,
            task_seq,
            at,
            corp_id,
            userid,
            agent_id,
            int(outcome),
            reason,
            code,
            day,
            hashed,
            now,
        )
        rows.append((*row, recall))
    return rows, delivered, counts


def insert(tx: Tx, rows: Sequence[Row]) -> None:
    tx.insert_rows("deliveries", _COLUMNS, rows)


def write_decisions(
    tx: Tx,
    task_seq: int,
    corp_id: str,
    agent_id: int | None,
    pos: int,
    decisions: Sequence[DecisionRow],
    day: int,
    content_hash: bytes | None,
    now: float,
) -> list[tuple[int, str]]:
    """Insert the rows of `decisions` from position `pos` on; gives (message_id, userid) of the delivered."""
    rows, delivered, _ = delivery_rows(task_seq, corp_id, agent_id, pos, decisions, day, content_hash, now)
    insert(tx, rows)
    return [(int(message_id), str(userid)) for message_id, userid in delivered]
