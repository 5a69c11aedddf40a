"""Store operations of the dispatcher: resolve tasks' recipients set-wise, read the facts the rules
need, write the decisions. Claims, and the check every write makes that its claim still holds, are
in `claim_sql`.

The rules themselves are not here: `dispatch/units.py` composes these reads and writes with
`domain.pipeline` into units of work, each run in one transaction, so a write's deliveries, its dedup
keys (the `deliveries_dedup` index over delivered rows) and its counters (the minute count, and the
daily count that the same index answers) commit together with the task's cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from dingbox.domain.org import ROOT_DEPT, Visibility
from dingbox.domain.pipeline import OUTCOME_NAMES, RecipientRow
from dingbox.store.base import Tx, chunks, placeholders
from dingbox.store.claim_sql import ClaimLost, Held, hold
from dingbox.store.task_sql import POS_BITS, TaskRow, delivery_range

MAX_POSITION = (1 << POS_BITS) - 1  # positions a message id can hold


# -- resolving ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    recipients: list[RecipientRow]
    invalid_dept_ids: list[int]


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
) -> Plan:
    """userid_list order, then users of the departments' subtrees by department id and userid; each once."""
    known = users_active(tx, corp_id, userids)
    recipients: list[RecipientRow] = [(u, known.get(u)) for u in userids]
    invalid, roots = _split_dept_ids(tx, corp_id, dept_ids)
    if to_all:
        roots = [ROOT_DEPT]
    if roots:
        listed = set(userids)  # the subtree query already names each user once
        recipients += [row for row in _subtree_users(tx, corp_id, roots) if row[0] not in listed]
    return Plan(recipients, invalid)


def _split_dept_ids(tx: Tx, corp_id: str, dept_ids: Sequence[str]) -> tuple[list[int], list[int]]:
    """(unknown ids, known ids), each listed once, as integers: accepting admits int64 decimal text only."""
    numbers = list(dict.fromkeys(int(raw) for raw in dept_ids))
    known: set[int] = set()
    for chunk in chunks(sorted(set(numbers))):
        known.update(
            r[0]
            for r in tx.all(
                "SELECT dept_id FROM departments"
                f" WHERE corp_id = ? AND dept_id IN ({placeholders(len(chunk))})",
                (corp_id, *chunk),
            )
        )
    return [n for n in numbers if n not in known], [n for n in numbers if n in known]


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


def visible_set(tx: Tx, corp_id: str, visible: Visibility) -> frozenset[str]:
    """The userids an app's visible range holds: its users, and everyone in its departments' subtrees."""
    users = set(visible.userids)
    if visible.dept_ids:
        users.update(u for u, _ in _subtree_users(tx, corp_id, visible.dept_ids))
    return frozenset(users)


# -- facts and writes of a dispatch (the units of work in dispatch/units.py compose them) ----------


def others_waiting(tx: Tx) -> bool:
    """Whether other units of work wait for this transaction (see `Tx.others_waiting`)."""
    return tx.others_waiting()


def aborts(tx: Tx, exc: BaseException) -> bool:
    """Whether `exc` ends the whole unit of work, not only a part under a savepoint (`Tx.aborts`)."""
    return tx.aborts(exc)


def begin_task(tx: Tx, seq: int, owner: str, total: int, invalid_dept_ids: list[int], now: float) -> None:
    """Record the resolved size; a task with nobody to decide is finished at once. ClaimLost when
    `owner` no longer holds the task."""
    changed = tx.execute(
        "UPDATE tasks SET total = ?, invalid_dept_ids = ?, status = CASE WHEN ? = 0 THEN 2 ELSE 1 END,"
        " finished_at = CASE WHEN ? = 0 THEN ? ELSE finished_at END,"
        " claimed_by = CASE WHEN ? = 0 THEN NULL ELSE claimed_by END"
        " WHERE seq = ? AND claimed_by = ?",
        (total, orjson.dumps(invalid_dept_ids).decode(), total, total, now, total, seq, owner),
    )
    if not changed:
        raise ClaimLost(f"{owner} no longer holds task seq {seq}")


def content_delivered_elsewhere(tx: Tx, task: TaskRow, day: int) -> bool:
    """Whether a task other than this one delivered this content for this app on this day."""
    assert task.content_hash is not None
    holder = content_holders(tx, task.agent_id, day, [task.content_hash]).get(task.content_hash)
    return holder is not None and holder != task.seq


def content_holders(tx: Tx, agent_id: int | None, day: int, hashes: Sequence[bytes]) -> dict[bytes, int]:
    """content hash -> seq of the first task that delivered it for this app on this day, for the
    hashes some task delivered: one statement for a whole group's contents."""
    holders: dict[bytes, int] = {}
    for chunk in chunks(hashes):
        holders.update(
            (bytes(content), seq)
            for content, seq in tx.all(
                "SELECT content_hash, task_seq FROM content_days WHERE agent_id = ? AND day = ?"
                f" AND content_hash IN ({placeholders(len(chunk))})",
                (agent_id, day, *chunk),
            )
        )
    return holders


def daily_facts(
    tx: Tx, agent_id: int | None, day: int, userids: Sequence[str], content_hash: bytes | None
) -> tuple[dict[str, int], dict[str, int]]:
    """(delivered today per user, task seq holding `content_hash` today per user) for one app, read off
    the `deliveries_dedup` index; the second is empty without a content hash."""
    daily: dict[str, int] = {}
    owners: dict[str, int] = {}
    for chunk in chunks(userids):
        for userid, count, same_task in tx.all(
            "SELECT userid, COUNT(*), MAX(CASE WHEN content_hash = ? THEN task_seq END) FROM deliveries"
            f" WHERE agent_id = ? AND day = ? AND userid IN ({placeholders(len(chunk))})"
            " AND outcome = 0 AND content_hash IS NOT NULL GROUP BY userid",
            (content_hash, agent_id, day, *chunk),
        ):
            daily[userid] = count
            if same_task is not None:
                owners[userid] = same_task
    return daily, owners


def content_owners(
    tx: Tx, agent_id: int | None, day: int, content_hash: bytes, userids: Sequence[str]
) -> dict[str, int]:
    """userid -> seq of the task that delivered this content to them today, for one app."""
    owners: dict[str, int] = {}
    for chunk in chunks(userids):
        owners.update(
            tx.all(
                "SELECT userid, task_seq FROM deliveries WHERE agent_id = ? AND day = ? AND content_hash = ?"
                f" AND userid IN ({placeholders(len(chunk))}) AND outcome = 0",
                (agent_id, day, content_hash, *chunk),
            )
        )
    return owners


def minute_count(tx: Tx, agent_id: int | None, minute: int) -> int:
    row = tx.one("SELECT n FROM minute_counts WHERE agent_id = ? AND minute = ?", (agent_id, minute))
    return int(row[0]) if row else 0


def users_active(tx: Tx, corp_id: str, userids: Sequence[str]) -> dict[str, bool]:
    """userid -> active, for the userids the corp has."""
    known: dict[str, bool] = {}
    for chunk in chunks(userids):
        for userid, active in tx.all(
            f"SELECT userid, active FROM users WHERE corp_id = ? AND userid IN ({placeholders(len(chunk))})",
            (corp_id, *chunk),
        ):
            known[userid] = bool(active)
    return known


def count_deliveries(
    tx: Tx, spent: dict[tuple[int | None, int, bytes | None], int], minutes: dict[tuple[int | None, int], int]
) -> None:
    """Record the contents spent today (first task wins) and add to the minute counters."""
    tx.executemany(
        "INSERT INTO content_days (agent_id, day, content_hash, task_seq) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (agent_id, day, content_hash) DO NOTHING",
        [(agent, day, content, seq) for (agent, day, content), seq in spent.items() if content is not None],
    )
    tx.executemany(
        "INSERT INTO minute_counts (agent_id, minute, n) VALUES (?, ?, ?)"
        " ON CONFLICT (agent_id, minute) DO UPDATE SET n = minute_counts.n + excluded.n",
        [(agent, minute, n) for (agent, minute), n in minutes.items() if n],
    )


def large_task_state(tx: Tx, seq: int, owner: str) -> Held:
    """A task's progress (cursor, delivered, recalled, total), its row locked until the write commits;
    ClaimLost once `owner` no longer holds it (reset, taken over) or it has finished."""
    return hold(tx, [seq], owner)[seq]


def advance_task(
    tx: Tx, seq: int, owner: str, cursor: int, delivered: int, now_real: float, finished_at: float | None
) -> None:
    """Move a large task's cursor after a write; a finished one lets go of its claim."""
    tx.execute(
        "UPDATE tasks SET cursor = ?, delivered = delivered + ?, claimed_at = ?,"
        " status = ?, finished_at = ?, claimed_by = ? WHERE seq = ?",
        (
            cursor,
            delivered,
            now_real,
            1 if finished_at is None else 2,
            finished_at,
            owner if finished_at is None else None,
            seq,
        ),
    )


def small_send(userids: int, departments: bool, to_all_user: bool, most: int) -> bool:
    """A send named by at most `most` userids alone: resolved, decided and written together with others
    in one transaction (by the loops, or by the transaction that accepts it)."""
    return not to_all_user and not departments and userids <= most


def userid_count(task: TaskRow) -> int:
    """The userids a stored task names (its list is JSON; a userid holds no comma)."""
    return task.userids.count(",") + 1


def is_small(task: TaskRow, most: int) -> bool:
    """A stored task not started yet that is a `small_send`."""
    return task.cursor == 0 and small_send(
        userid_count(task), task.dept_ids != "[]", bool(task.to_all_user), most
    )


def live_small_tasks(tx: Tx, seqs: Sequence[int], owner: str) -> dict[int, bool]:
    """seq -> recalled, of small tasks `owner` holds, their rows locked until the write commits;
    ClaimLost unless it holds every one, not started."""
    held = hold(tx, seqs, owner)
    if any(state.cursor for state in held.values()):
        raise ClaimLost(f"a task {owner} holds was started by another dispatcher")
    return {seq: state.recalled_at is not None for seq, state in held.items()}


def app_waits(tx: Tx, agent_id: int, below_seq: int) -> bool:
    """Whether an app has an unfinished task accepted before `below_seq` (one seek of
    `tasks_agent_pending`): a task accepted after it must wait for it."""
    row = tx.one(
        "SELECT 1 FROM tasks WHERE status < 2 AND agent_id = ? AND seq < ? LIMIT 1", (agent_id, below_seq)
    )
    return row is not None


def finish_small_tasks(tx: Tx, finished: Sequence[tuple[int, int, int, float, int]]) -> None:
    """(recipients, recipients, delivered, finished_at, seq) of small tasks decided whole."""
    tx.executemany(
        "UPDATE tasks SET total = ?, cursor = ?, delivered = ?, status = 2, finished_at = ?,"
        " claimed_by = NULL WHERE seq = ?",
        finished,
    )


def task_counts(tx: Tx, seq: int) -> dict[str, int]:
    """Recipients of a task by outcome name."""
    return {
        OUTCOME_NAMES[outcome]: n
        for outcome, n in tx.all(
            "SELECT outcome, COUNT(*) FROM deliveries WHERE id >= ? AND id < ? GROUP BY outcome",
            delivery_range(seq),
        )
    }


def decided_userids(tx: Tx, seq: int) -> set[str]:
    return {
        r[0] for r in tx.all("SELECT userid FROM deliveries WHERE id >= ? AND id < ?", delivery_range(seq))
    }


def end_task(tx: Tx, seq: int, total: int, now: float) -> None:
    """Finish a task with `total` recipients decided."""
    tx.execute(
        "UPDATE tasks SET total = ?, cursor = ?, status = 2, finished_at = ?, claimed_by = NULL"
        " WHERE seq = ?",
        (total, total, now, seq),
    )
