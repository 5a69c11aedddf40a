"""Writing decided recipients: one deliveries row each, a delivered row being that recipient's message.

The shape of a delivery row lives here once, for every source that writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from dingbox.domain.pipeline import DecisionRow, Outcome
from dingbox.store.base import Tx
from dingbox.store.task_sql import delivery_id

_INSERT = (
    "INSERT INTO deliveries (id, task_seq, pos, corp_id, userid, agent_id, outcome, reason, code, day,"
    " content_hash, created_at, recalled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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
    """Insert the rows of `decisions` from position `pos` on; gives (message_id, userid) of the delivered.

    `content_hash` goes on delivered rows only: it is what the same-content rule and the daily count read.
    """
    base = delivery_id(task_seq, 0)
    rows: list[tuple[object, ...]] = []
    delivered: list[tuple[int, str]] = []
    for at, (userid, outcome, reason, code) in enumerate(decisions, pos):
        is_delivered = outcome == Outcome.DELIVERED
        if is_delivered:
            delivered.append((base | at, userid))
        rows.append(
            (
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
                content_hash if is_delivered else None,
                now,
                0,
            )
        )
    tx.executemany(_INSERT, rows)
    return delivered
