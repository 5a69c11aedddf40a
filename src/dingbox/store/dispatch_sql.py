"""Store operations of the dispatcher: claim a task, resolve its recipients set-wise, decide, write a batch.

A write's deliveries, its dedup keys (the `deliveries_dedup` index over delivered rows) and its
counters (the minute count, and the daily count that the same index answers) commit together with
the task's cursor, so a crash loses a whole write or none of it and a restart resumes at the cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson

from dingbox.domain.limits import AppLimits
from dingbox.domain.org import ROOT_DEPT, Visibility
from dingbox.domain.pipeline import BatchFacts, DecisionRow, Ledger, Outcome, RecipientRow, decide_batch
from dingbox.store import delivery_sql
from dingbox.store.base import Tx, placeholders
from dingbox.store.task_sql import POS_BITS, TASK_COLUMNS, TaskRow, delivery_range

T = TypeVar("T")
CHUNK = 500  # bound parameters per IN list, well under every backend's limit
MAX_POSITION = (1 << POS_BITS) - 1  # positions a message id can hold


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# -- claiming -------------------------------------------------------------------------------------


def release_claims(tx: Tx, owner: str | None = None) -> int:
    """Free claims: every claim at start of a process that owns the whole store (no other claim can be
    alive), or one dispatcher's own after its store failed mid-task (the tasks resume at their cursor)."""
    if owner is None:
        return tx.execute(
            "UPDATE tasks SET claimed_by = NULL, claimed_at = NULL"
            " WHERE status < 2 AND claimed_by IS NOT NULL"
        )
    return tx.execute(
        "UPDATE tasks SET claimed_by = NULL, claimed_at = NULL WHERE status < 2 AND claimed_by = ?", (owner,)
    )


CLAIM_PAGE = 500  # pending tasks read per step of a claim, in acceptance order


def claim_ready(tx: Tx, owner: str, now_real: float, limit: int) -> list[TaskRow]:
    """Claim up to `limit` ready tasks, oldest first, leaving out any app with an earlier unfinished task
    claimed by another dispatcher (one app's tasks are decided in acceptance order).

    Reads the `tasks_pending` index in seq order, skipping the few tasks in flight, and stops at the
    first task not ready yet (tasks become ready in acceptance order: `not_before` is the accept time
    plus one fixed delay), so a claim
    costs the same with 10 or 100,000 tasks pending. Each app seen costs one look-up of its oldest
    unfinished task in `tasks_agent_pending`.
    """
    claimed: list[int] = []
    heads: dict[int, bool] = {}  # agent_id -> may we take its tasks (its oldest unfinished one is ours)
    after = 0
    while len(claimed) < limit:
        page = tx.all(
            "SELECT seq, agent_id, not_before FROM tasks WHERE status < 2 AND claimed_by IS NULL AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (after, CLAIM_PAGE),
        )
        for seq, agent_id, not_before in page:
            if not_before > now_real:
                page = []  # the rest are not ready either
                break
            if agent_id is not None:
                free = heads.get(agent_id)
                if free is None:
                    head = tx.one("SELECT MIN(seq) FROM tasks WHERE status < 2 AND agent_id = ?", (agent_id,))
                    free = heads[agent_id] = head is not None and head[0] == seq
                if not free:
                    continue
            claimed.append(seq)
            if len(claimed) == limit:
                break
        if len(page) < CLAIM_PAGE:
            break
        after = page[-1][0]
    if not claimed:
        return []
    tasks: list[TaskRow] = []
    for chunk in _chunks(claimed):
        marks = placeholders(len(chunk))
        tx.execute(
            f"UPDATE tasks SET claimed_by = ?, claimed_at = ? WHERE seq IN ({marks})",
            (owner, now_real, *chunk),
        )
        tasks += [
            TaskRow(*row) for row in tx.all(f"SELECT {TASK_COLUMNS} FROM tasks WHERE seq IN ({marks})", chunk)
        ]
    tasks.sort(key=lambda t: t.seq)
    return tasks


def next_ready_at(tx: Tx, now_real: float) -> float | None:
    """When the oldest unclaimed task becomes ready (tasks become ready in acceptance order)."""
    row = tx.one("SELECT not_before FROM tasks WHERE status < 2 AND claimed_by IS NULL ORDER BY seq LIMIT 1")
    return None if row is None or row[0] <= now_real else float(row[0])


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
    return Plan(recipients, invalid)


def _split_dept_ids(tx: Tx, corp_id: str, dept_ids: Sequence[str]) -> tuple[list[int], list[int]]:
    """(unknown ids, known ids), each listed once, as integers: accepting admits int64 decimal text only."""
    numbers = list(dict.fromkeys(int(raw) for raw in dept_ids))
    known: set[int] = set()
    for chunk in _chunks(sorted(set(numbers))):
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


# -- deciding and writing ------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskContext:
    """What a task is decided under: its app's limits, and the DingTalk day and minute of its
    acceptance."""

    task: TaskRow
    limits: AppLimits
    day: int
    minute: int


@dataclass
class Written:
    """What one write decided for one task: for the event bus, the log and the task's counts."""

    task: TaskRow
    finished: bool
    decided: int  # the task's cursor after the write
    total: int
    delivered: list[list[int | str]]  # [message_id, userid] of this write's deliveries
    counts: dict[str, int]  # outcome name -> recipients, this write's


_OUTCOME_NAMES = ("delivered", "forbidden", "invalid", "failed")


def begin_task(tx: Tx, seq: int, owner: str, total: int, invalid_dept_ids: list[int], now: float) -> bool:
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


def _read_daily(
    tx: Tx, agent_id: int | None, day: int, userids: Sequence[str], content_hash: bytes | None
) -> tuple[dict[str, int], dict[str, int]]:
    """(delivered today per user, task seq holding `content_hash` today per user) for one app, read off
    the `deliveries_dedup` index; the second is empty without a content hash."""
    daily: dict[str, int] = {}
    owners: dict[str, int] = {}
    for chunk in _chunks(userids):
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


def _read_owners(
    tx: Tx, agent_id: int | None, day: int, content_hash: bytes, userids: Sequence[str]
) -> dict[str, int]:
    owners: dict[str, int] = {}
    for chunk in _chunks(userids):
        owners.update(
            tx.all(
                "SELECT userid, task_seq FROM deliveries WHERE agent_id = ? AND day = ? AND content_hash = ?"
                f" AND userid IN ({placeholders(len(chunk))}) AND outcome = 0",
                (agent_id, day, content_hash, *chunk),
            )
        )
    return owners


def _minute_count(tx: Tx, agent_id: int | None, minute: int) -> int:
    row = tx.one("SELECT n FROM minute_counts WHERE agent_id = ? AND minute = ?", (agent_id, minute))
    return int(row[0]) if row else 0


def _rows(
    task: TaskRow,
    pos: int,
    decisions: Sequence[DecisionRow | None],
    day: int,
    now: float,
    recalled: int,
    written: Written,
) -> list[delivery_sql.Row]:
    """Delivery rows of decisions taken from position `pos`; adds to `written`'s lists and counts."""
    rows, delivered, counts = delivery_sql.delivery_rows(
        task.seq, task.corp_id, task.agent_id, pos, decisions, day, task.content_hash, now, recalled
    )
    written.delivered += delivered
    for name, n in zip(_OUTCOME_NAMES, counts, strict=True):
        if n:
            written.counts[name] = written.counts.get(name, 0) + n
    return rows


def _count_deliveries(
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


CHUNK_ROWS = 250  # recipients decided between two looks at whether others wait for the writer


def apply_batch(
    tx: Tx,
    ctx: TaskContext,
    owner: str,
    pos: int,
    recipients: Sequence[RecipientRow],
    visible: frozenset[str] | None,
    now: float,
    now_real: float,
    most: int,
    recipient_facts: bool = True,
) -> Written | None:
    """Decide and write a large task from position `pos` on, in one transaction sized to the work: up
    to `most` recipients, but only until other units of work wait for the writer (a send being
    accepted), so they wait for one chunk at most. None when the task is gone or no longer ours.

    Few, large commits matter: every commit of a fan-out rewrites the pages of the userid-keyed
    indexes it touched, and a fan-out ordered by department touches pages all over them.

    `recipient_facts=False` skips reading each recipient's same-content owner and daily count: right
    only when neither can matter (see `Dispatcher._run_large`).
    """
    task = ctx.task
    state = tx.one(
        "SELECT cursor, delivered, recalled_at, total FROM tasks WHERE seq = ? AND claimed_by = ?"
        + tx.sql("row_lock"),
        (task.seq, owner),
    )
    if state is None or state[0] != pos:
        return None  # reset, or another dispatcher took over: stop quietly
    _, delivered_before, recalled_at, total = state
    recalled = int(recalled_at is not None)
    minute_before = minute = _minute_count(tx, task.agent_id, ctx.minute)
    in_task = delivered_before
    end = min(len(recipients), pos + most)
    written = Written(task, False, pos, total or 0, [], {})
    at = pos
    while at < end and (at == pos or not tx.others_waiting()):
        batch = recipients[at : min(end, at + CHUNK_ROWS)]
        daily: dict[str, int] = {}
        owners: dict[str, int] = {}
        if task.content_hash is not None and recipient_facts:
            deliverable = [userid for userid, active in batch if active]
            daily, owners = _read_daily(tx, task.agent_id, ctx.day, deliverable, task.content_hash)
        facts = BatchFacts(visible, owners, daily, minute, in_task)
        decisions = decide_batch(
            task.seq, batch, facts, ctx.limits, is_isv=task.is_isv, dedup=task.content_hash is not None
        )
        minute, in_task = facts.minute_count, facts.delivered_in_task
        delivery_sql.insert(tx, _rows(task, at, decisions, ctx.day, now, recalled, written))
        at += len(batch)
    written.decided = at
    written.finished = total is not None and at >= total
    delivered_now = minute - minute_before
    if delivered_now:
        _count_deliveries(
            tx,
            {(task.agent_id, ctx.day, task.content_hash): task.seq},
            {(task.agent_id, ctx.minute): delivered_now},
        )
    tx.execute(
        "UPDATE tasks SET cursor = ?, delivered = delivered + ?, claimed_at = ?,"
        " status = ?, finished_at = ?, claimed_by = ? WHERE seq = ?",
        (
            at,
            delivered_now,
            now_real,
            2 if written.finished else 1,
            now if written.finished else None,
            None if written.finished else owner,
            task.seq,
        ),
    )
    return written


def is_small(task: TaskRow, most: int) -> bool:
    """A task named by userids alone, not started, with at most `most` of them: it is resolved, decided
    and written together with others in one transaction."""
    return (
        task.cursor == 0 and not task.to_all_user and task.dept_ids == "[]" and task.userids.count(",") < most
    )


def dispatch_small(
    tx: Tx,
    contexts: Sequence[TaskContext],
    owner: str,
    visible_sets: dict[int, frozenset[str] | None],
    now: float,
) -> tuple[list[Written], int]:
    """Resolve, decide and write a group of small tasks in acceptance order, in one transaction; the
    group stops early, after any task, when other units of work wait for the writer. Gives what was
    written and how many of `contexts` are done with; the rest stay claimed for the next call.

    The facts of every task (users, daily counts, same-content owners, minute counts) are read in a
    few set-wise statements up front; a `Ledger` carries each task's deliveries into the facts the next
    one sees, so the rules fall exactly where one transaction per task would put them.
    """
    contexts_given = contexts
    seqs = [c.task.seq for c in contexts]
    live: dict[int, int] = {}  # seq -> recalled
    for chunk in _chunks(seqs):
        live.update(
            (seq, int(recalled_at is not None))
            for seq, recalled_at in tx.all(
                f"SELECT seq, recalled_at FROM tasks WHERE seq IN ({placeholders(len(chunk))})"
                " AND claimed_by = ? AND status < 2 AND cursor = 0" + tx.sql("row_lock"),
                (*chunk, owner),
            )
        )
    given = len(contexts)
    contexts = [c for c in contexts if c.task.seq in live]  # reset or taken over: nothing to do
    if not contexts:
        return [], given
    userids = {c.task.seq: [str(u) for u in orjson.loads(c.task.userids)] for c in contexts}
    known: dict[tuple[str, str], bool] = {}
    by_corp: dict[str, set[str]] = {}
    for c in contexts:
        by_corp.setdefault(c.task.corp_id, set()).update(userids[c.task.seq])
    for corp_id, wanted in by_corp.items():
        for names in _chunks(sorted(wanted)):
            for userid, active in tx.all(
                "SELECT userid, active FROM users"
                f" WHERE corp_id = ? AND userid IN ({placeholders(len(names))})",
                (corp_id, *names),
            ):
                known[(corp_id, userid)] = bool(active)
    recipients = {
        c.task.seq: [(u, known.get((c.task.corp_id, u))) for u in userids[c.task.seq]] for c in contexts
    }
    ledger = Ledger()
    _load_ledger(tx, ledger, contexts, recipients)
    results: list[Written] = []
    spent: dict[tuple[int | None, int, bytes | None], int] = {}
    minutes: dict[tuple[int | None, int], int] = {}
    rows: list[tuple[object, ...]] = []
    updates: list[tuple[object, ...]] = []
    for c in contexts:
        if results and tx.others_waiting():
            break
        task = c.task
        facts = ledger.facts(
            task.agent_id, c.day, c.minute, task.content_hash, visible_sets.get(task.agent_id or 0)
        )
        before = facts.minute_count
        batch = recipients[task.seq]
        decisions = decide_batch(
            task.seq, batch, facts, c.limits, is_isv=task.is_isv, dedup=task.content_hash is not None
        )
        ledger.settle(task.agent_id, c.minute, facts)
        written = Written(task, True, len(batch), len(batch), [], {})
        rows += _rows(task, 0, decisions, c.day, now, live[task.seq], written)
        delivered = facts.minute_count - before
        if delivered:
            spent.setdefault((task.agent_id, c.day, task.content_hash), task.seq)
            minutes[(task.agent_id, c.minute)] = minutes.get((task.agent_id, c.minute), 0) + delivered
        updates.append((len(batch), len(batch), delivered, now, task.seq))
        results.append(written)
    delivery_sql.insert(tx, rows)
    _count_deliveries(tx, spent, minutes)
    tx.executemany(
        "UPDATE tasks SET total = ?, cursor = ?, delivered = ?, status = 2, finished_at = ?,"
        " claimed_by = NULL WHERE seq = ?",
        updates,
    )
    last = results[-1].task.seq
    return results, next(n for n, c in enumerate(contexts_given, 1) if c.task.seq == last)


def _load_ledger(
    tx: Tx, ledger: Ledger, contexts: Sequence[TaskContext], recipients: dict[int, list[RecipientRow]]
) -> None:
    """Read the facts a group's rules need: daily counts where a daily cap applies, same-content owners
    where another task delivered the content today, minute counts per app and minute."""
    daily_users: dict[tuple[int | None, int], set[str]] = {}
    owner_users: dict[tuple[int | None, int, bytes], set[str]] = {}
    for c in contexts:
        task = c.task
        ledger.minutes.setdefault((task.agent_id, c.minute), 0)
        if task.content_hash is None:
            continue
        active = [u for u, ok in recipients[task.seq] if ok]
        if c.limits.daily_per_user is not None:
            daily_users.setdefault((task.agent_id, c.day), set()).update(active)
        key = (task.agent_id, c.day, task.content_hash)
        if key not in owner_users and content_delivered_elsewhere(tx, task, c.day):
            owner_users[key] = set()
        if key in owner_users:
            owner_users[key].update(active)
    for (agent_id, day), users in daily_users.items():
        ledger.daily[(agent_id, day)] = _read_daily(tx, agent_id, day, sorted(users), None)[0]
    for (agent_id, day, content), users in owner_users.items():
        ledger.owners[(agent_id, day, content)] = _read_owners(tx, agent_id, day, content, sorted(users))
    for agent_id, minute in list(ledger.minutes):
        ledger.minutes[(agent_id, minute)] = _minute_count(tx, agent_id, minute)


def task_counts(tx: Tx, seq: int) -> dict[str, int]:
    """Recipients of a task by outcome name."""
    return {
        _OUTCOME_NAMES[outcome]: n
        for outcome, n in tx.all(
            "SELECT outcome, COUNT(*) FROM deliveries WHERE id >= ? AND id < ? GROUP BY outcome",
            delivery_range(seq),
        )
    }


def fail_task(tx: Tx, task: TaskRow, owner: str, userids: Sequence[str], now: float) -> Written | None:
    """End a task that cannot be decided: the named userids it has not decided yet fail (`dispatch_error`)."""
    state = tx.one(
        "SELECT cursor FROM tasks WHERE seq = ? AND claimed_by = ? AND status < 2" + tx.sql("row_lock"),
        (task.seq, owner),
    )
    if state is None:
        return None
    cursor = int(state[0])
    decided = {
        r[0]
        for r in tx.all("SELECT userid FROM deliveries WHERE id >= ? AND id < ?", delivery_range(task.seq))
    }
    left = [u for u in dict.fromkeys(userids) if u not in decided][: max(0, MAX_POSITION - cursor)]
    written = Written(task, True, cursor + len(left), cursor + len(left), [], {})
    decisions = [(userid, Outcome.FAILED, "dispatch_error", None) for userid in left]
    delivery_sql.insert(tx, _rows(task, cursor, decisions, 0, now, 0, written))
    tx.execute(
        "UPDATE tasks SET total = ?, cursor = ?, status = 2, finished_at = ?, claimed_by = NULL"
        " WHERE seq = ?",
        (written.total, written.decided, now, task.seq),
    )
    written.counts = task_counts(tx, task.seq)
    return written
