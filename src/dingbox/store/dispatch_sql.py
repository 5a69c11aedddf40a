"""Store operations of the dispatcher: claim a task, resolve its recipients set-wise, decide, write a batch.

A batch's deliveries, its dedup keys (the `deliveries_dedup` index over delivered rows) and its
counters (the minute count, and the daily count that the same index answers) commit together with
the task's cursor, so a crash loses a whole batch or none of it and a restart resumes at the cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson

from dingbox.domain.limits import AppLimits
from dingbox.domain.org import ROOT_DEPT, Visibility
from dingbox.domain.pipeline import BatchFacts, Outcome, RecipientRow, decide_batch
from dingbox.params import MAX_INT64
from dingbox.store.base import Tx, placeholders
from dingbox.store.task_sql import TASK_COLUMNS, TaskRow, delivery_id

T = TypeVar("T")
CHUNK = 500  # bound parameters per IN list, well under every backend's limit
CLAIM_LEASE = 60.0  # seconds a claim lives without progress before another dispatcher may take it


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# -- claiming -------------------------------------------------------------------------------------


def release_claims(tx: Tx) -> int:
    """At start of a process that owns the whole store: tasks claimed by a dead process are free."""
    return tx.execute(
        "UPDATE tasks SET claimed_by = NULL, claimed_at = NULL WHERE status < 2 AND claimed_by IS NOT NULL"
    )


def claim_next(tx: Tx, owner: str, now_real: float) -> TaskRow | None:
    """The oldest ready task whose app has no earlier unfinished task (apps decide in accept order)."""
    row = tx.one(
        "SELECT t.seq FROM tasks t WHERE t.status < 2 AND t.not_before <= ?"
        " AND (t.claimed_by IS NULL OR t.claimed_at < ?)"
        " AND NOT EXISTS (SELECT 1 FROM tasks e"
        " WHERE e.status < 2 AND e.agent_id = t.agent_id AND e.seq < t.seq)"
        " ORDER BY t.seq LIMIT 1",
        (now_real, now_real - CLAIM_LEASE),
    )
    if row is None:
        return None
    tx.execute("UPDATE tasks SET claimed_by = ?, claimed_at = ? WHERE seq = ?", (owner, now_real, row[0]))
    task = tx.one(f"SELECT {TASK_COLUMNS} FROM tasks WHERE seq = ?", (row[0],))
    return None if task is None else TaskRow(*task)


def next_ready_at(tx: Tx, now_real: float) -> float | None:
    """When the next delayed task becomes ready. Tasks already ready but not claimable (their app is
    still deciding an earlier task) are left out: the poll and the end of that task pick them up."""
    row = tx.one(
        "SELECT MIN(not_before) FROM tasks WHERE status < 2 AND claimed_by IS NULL AND not_before > ?",
        (now_real,),
    )
    return None if row is None else row[0]


# -- resolving ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    recipients: list[RecipientRow]
    invalid_dept_ids: list[int | str]
    visible: frozenset[str] | None


_SUBTREE = (
    "WITH RECURSIVE sub(dept_id) AS ("
    " SELECT dept_id FROM departments WHERE corp_id = ? AND dept_id IN ({roots})"
    " UNION SELECT d.dept_id FROM departments d JOIN sub ON d.parent_id = sub.dept_id WHERE d.corp_id = ?)"
)


def resolve(
    tx: Tx,
    corp_id: str,
    userids: Sequence[str],
    dept_ids: Sequence[str],
    to_all: bool,
    visible: Visibility | None,
) -> Plan:
    """userid_list order, then users of the departments' subtrees by department id and userid; each once."""
    known: dict[str, bool] = {}
    for chunk in _chunks(userids):
        for userid, active in tx.all(
            f"SELECT userid, active FROM users WHERE corp_id = ? AND userid IN ({placeholders(len(chunk))})",
            (corp_id, *chunk),
        ):
            known[userid] = bool(active)
    recipients: list[RecipientRow] = [(u, known.get(u)) for u in userids]
    invalid, roots = _split_dept_ids(tx, corp_id, dept_ids)
    if to_all:
        roots = [ROOT_DEPT]
    if roots:
        listed = set(userids)  # the subtree query already names each user once
        recipients += [row for row in _subtree_users(tx, corp_id, roots) if row[0] not in listed]
    return Plan(recipients, invalid, _visible_set(tx, corp_id, visible))


def _dept_number(raw: str) -> int | None:
    """A department id as DingTalk parses it (an int64); None for anything else, e.g. "abc", "²", "-1"."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    number = int(raw)
    return number if number <= MAX_INT64 else None


def _split_dept_ids(tx: Tx, corp_id: str, dept_ids: Sequence[str]) -> tuple[list[int | str], list[int]]:
    """(invalid ids: malformed ones as given, unknown ones as numbers; known ids), each listed once."""
    numbers = {raw: _dept_number(raw) for raw in dept_ids}
    wanted = sorted({n for n in numbers.values() if n is not None})
    known: set[int] = set()
    for chunk in _chunks(wanted):
        known.update(
            r[0]
            for r in tx.all(
                "SELECT dept_id FROM departments"
                f" WHERE corp_id = ? AND dept_id IN ({placeholders(len(chunk))})",
                (corp_id, *chunk),
            )
        )
    invalid: dict[int | str, None] = {}
    roots: dict[int, None] = {}
    for raw, number in numbers.items():
        if number is None:
            invalid.setdefault(raw)
        elif number in known:
            roots.setdefault(number)
        else:
            invalid.setdefault(number)
    return list(invalid), list(roots)


def _subtree_users(tx: Tx, corp_id: str, roots: Sequence[int]) -> list[tuple[str, bool]]:
    """(userid, active) of every user in the subtrees, by department id then userid, each once.

    Read straight off the (corp_id, dept_id, userid) key, which is already in that order, and with
    the few inactive users fetched apart: a join or a GROUP BY over 100,000 members costs more than
    the rest of the fan-out's reading together.
    """
    rows = tx.all(
        _SUBTREE.format(roots=placeholders(len(roots)))
        + " SELECT userid FROM user_depts WHERE corp_id = ? AND dept_id IN (SELECT dept_id FROM sub)"
        " ORDER BY dept_id, userid",
        (corp_id, *roots, corp_id, corp_id),
    )
    inactive = {r[0] for r in tx.all("SELECT userid FROM users WHERE corp_id = ? AND active = 0", (corp_id,))}
    return [(userid, userid not in inactive) for userid in dict.fromkeys(r[0] for r in rows)]


def _visible_set(tx: Tx, corp_id: str, visible: Visibility | None) -> frozenset[str] | None:
    if visible is None:
        return None
    users = set(visible.userids)
    if visible.dept_ids:
        users.update(u for u, _ in _subtree_users(tx, corp_id, visible.dept_ids))
    return frozenset(users)


# -- deciding and writing ------------------------------------------------------------------------


def begin_task(
    tx: Tx, seq: int, owner: str, total: int, invalid_dept_ids: list[int | str], now: float
) -> bool:
    """Record the resolved size; a task with nobody to decide is finished at once."""
    changed = tx.execute(
        "UPDATE tasks SET total = ?, invalid_dept_ids = ?, status = CASE WHEN ? = 0 THEN 2 ELSE 1 END,"
        " finished_at = CASE WHEN ? = 0 THEN ? ELSE finished_at END,"
        " claimed_by = CASE WHEN ? = 0 THEN NULL ELSE claimed_by END"
        " WHERE seq = ? AND claimed_by = ?",
        (total, orjson.dumps(invalid_dept_ids).decode(), total, total, now, total, seq, owner),
    )
    return changed > 0


def content_delivered_elsewhere(tx: Tx, task: TaskRow, day: int) -> bool:
    """Whether a task other than this one delivered this content for this app on this day."""
    row = tx.one(
        "SELECT task_seq FROM content_days WHERE agent_id = ? AND day = ? AND content_hash = ?",
        (task.agent_id, day, task.content_hash),
    )
    return row is not None and row[0] != task.seq


def apply_batch(
    tx: Tx,
    task: TaskRow,
    owner: str,
    pos: int,
    batch: Sequence[RecipientRow],
    visible: frozenset[str] | None,
    limits: AppLimits,
    day: int,
    minute: int,
    now: float,
    now_real: float,
    recipient_facts: bool = True,
) -> bool:
    """Decide and write one batch; False when the task is gone or no longer ours.

    `recipient_facts=False` skips reading each recipient's same-content owner and daily count: right
    only when neither can matter (see `Dispatcher._run`).
    """
    state = tx.one(
        "SELECT cursor, delivered, recalled_at, total FROM tasks WHERE seq = ? AND claimed_by = ?",
        (task.seq, owner),
    )
    if state is None or state[0] != pos:
        return False  # reset, or another dispatcher took over: stop quietly
    cursor, delivered_before, recalled_at, total = state
    deliverable = [userid for userid, active in batch if active]
    dedup_owner: dict[str, int] = {}
    daily: dict[str, int] = {}
    if task.content_hash is not None and recipient_facts:
        for chunk in _chunks(deliverable):
            for userid, count, same_task in tx.all(
                "SELECT userid, COUNT(*), MAX(CASE WHEN content_hash = ? THEN task_seq END) FROM deliveries"
                f" WHERE agent_id = ? AND day = ? AND userid IN ({placeholders(len(chunk))})"
                " AND outcome = 0 AND content_hash IS NOT NULL GROUP BY userid",
                (task.content_hash, task.agent_id, day, *chunk),
            ):
                daily[userid] = count
                if same_task is not None:
                    dedup_owner[userid] = same_task
    minute_row = tx.one(
        "SELECT n FROM minute_counts WHERE agent_id = ? AND minute = ?", (task.agent_id, minute)
    )
    facts = BatchFacts(
        visible=visible,
        dedup_owner=dedup_owner,
        daily_count=daily,
        minute_count=minute_row[0] if minute_row else 0,
        delivered_in_task=delivered_before,
    )
    decisions = decide_batch(
        task.seq, batch, facts, limits, is_isv=task.is_isv, dedup=task.content_hash is not None
    )
    recalled = int(recalled_at is not None)
    seq, corp_id, agent_id, content = task.seq, task.corp_id, task.agent_id, task.content_hash
    rows: list[tuple[object, ...]] = []
    base = delivery_id(seq, 0)
    delivered_now = 0
    for at, decision in enumerate(decisions, pos):
        if decision is None:
            continue
        userid, outcome, reason, code = decision
        row: tuple[object, ...]
        if outcome == Outcome.DELIVERED:
            delivered_now += 1
            row = (base | at, seq, at, corp_id, userid, agent_id, 0, None, None, day, content, now, recalled)
        else:
            row = (
                base | at,
                seq,
                at,
                corp_id,
                userid,
                agent_id,
                int(outcome),
                reason,
                code,
                day,
                None,
                now,
                0,
            )
        rows.append(row)
    tx.executemany(
        "INSERT INTO deliveries (id, task_seq, pos, corp_id, userid, agent_id, outcome, reason, code, day,"
        " content_hash, created_at, recalled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    if delivered_now and content is not None:
        tx.execute(
            "INSERT INTO content_days (agent_id, day, content_hash, task_seq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (agent_id, day, content_hash) DO NOTHING",
            (agent_id, day, content, seq),
        )
    if delivered_now:
        tx.execute(
            "INSERT INTO minute_counts (agent_id, minute, n) VALUES (?, ?, ?)"
            " ON CONFLICT (agent_id, minute) DO UPDATE SET n = minute_counts.n + excluded.n",
            (task.agent_id, minute, delivered_now),
        )
    new_cursor = cursor + len(batch)
    finished = total is not None and new_cursor >= total
    tx.execute(
        "UPDATE tasks SET cursor = ?, delivered = delivered + ?, claimed_at = ?,"
        " status = ?, finished_at = ?, claimed_by = ? WHERE seq = ?",
        (
            new_cursor,
            delivered_now,
            now_real,
            2 if finished else 1,
            now if finished else None,
            None if finished else owner,
            task.seq,
        ),
    )
    return True
