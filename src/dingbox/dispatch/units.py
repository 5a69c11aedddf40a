"""The units of work of a dispatch: the store's reads of facts, the domain's rules, the store's writes,
composed here and run by the store in one transaction each.

The store supplies facts (users, daily counts, same-content owners, minute counts) and applies
decisions; it never decides. `domain.pipeline` decides and moves the budgets as it goes, so a write's
rows, dedup keys and counters agree with one another when they commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from dingbox.clock import calendar_minute, dingtalk_day
from dingbox.domain.limits import AppLimits
from dingbox.domain.pipeline import (
    OUTCOME_NAMES,
    BatchFacts,
    DecisionRow,
    Ledger,
    Outcome,
    RecipientRow,
    decide_batch,
)
from dingbox.store import delivery_sql, dispatch_sql, task_sql
from dingbox.store.base import Tx, savepoint
from dingbox.store.claim_sql import ClaimLost
from dingbox.store.task_sql import PreparedTask, TaskRow

log = logging.getLogger("dingbox.dispatch")

MAX_POSITION = dispatch_sql.MAX_POSITION
CHUNK_ROWS = 250  # recipients decided between two looks at whether others wait for the writer


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


def _rows(
    task: TaskRow,
    pos: int,
    decisions: Sequence[DecisionRow | None],
    day: int,
    now: float,
    recalled: bool,
    written: Written,
) -> list[delivery_sql.Row]:
    """Delivery rows of decisions taken from position `pos`; adds to `written`'s lists and counts."""
    rows, delivered, counts = delivery_sql.delivery_rows(
        task.seq, task.corp_id, task.agent_id, pos, decisions, day, task.content_hash, now, int(recalled)
    )
    written.delivered += delivered
    for name, n in zip(OUTCOME_NAMES, counts, strict=True):
        if n:
            written.counts[name] = written.counts.get(name, 0) + n
    return rows


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
) -> Written:
    """Decide and write a large task from position `pos` on, in one transaction sized to the work: up
    to `most` recipients, but only until other units of work wait for the writer (a send being
    accepted), so they wait for one chunk at most. ClaimLost when the task is gone, no longer ours, or
    was written past `pos` by another dispatcher.

    Few, large commits matter: every commit of a fan-out rewrites the pages of the userid-keyed
    indexes it touched, and a fan-out ordered by department touches pages all over them.

    `recipient_facts=False` skips reading each recipient's same-content owner and daily count: right
    only when neither can matter (see `Dispatcher._run_large`).
    """
    task = ctx.task
    state = dispatch_sql.large_task_state(tx, task.seq, owner)
    if state.cursor != pos:
        raise ClaimLost(f"task seq {task.seq} is at {state.cursor}, not {pos}")
    minute_before = minute = dispatch_sql.minute_count(tx, task.agent_id, ctx.minute)
    in_task = state.delivered
    end = min(len(recipients), pos + most)
    written = Written(task, False, pos, state.total or 0, [], {})
    at = pos
    while at < end and (at == pos or not dispatch_sql.others_waiting(tx)):
        batch = recipients[at : min(end, at + CHUNK_ROWS)]
        daily: dict[str, int] = {}
        owners: dict[str, int] = {}
        if task.content_hash is not None and recipient_facts:
            deliverable = [userid for userid, active in batch if active]
            daily, owners = dispatch_sql.daily_facts(
                tx, task.agent_id, ctx.day, deliverable, task.content_hash
            )
        facts = BatchFacts(visible, owners, daily, minute, in_task)
        decisions = decide_batch(
            task.seq, batch, facts, ctx.limits, is_isv=task.is_isv, dedup=task.content_hash is not None
        )
        minute, in_task = facts.minute_count, facts.delivered_in_task
        rows = _rows(task, at, decisions, ctx.day, now, state.recalled_at is not None, written)
        delivery_sql.insert(tx, rows)
        at += len(batch)
    written.decided = at
    written.finished = state.total is not None and at >= state.total
    delivered_now = minute - minute_before
    if delivered_now:
        dispatch_sql.count_deliveries(
            tx,
            {(task.agent_id, ctx.day, task.content_hash): task.seq},
            {(task.agent_id, ctx.minute): delivered_now},
        )
    dispatch_sql.advance_task(
        tx, task.seq, owner, at, delivered_now, now_real, now if written.finished else None
    )
    return written


def dispatch_small(
    tx: Tx,
    contexts: Sequence[TaskContext],
    owner: str,
    visible_sets: dict[int, frozenset[str] | None],
    now: float,
) -> list[Written]:
    """Resolve, decide and write a group of small tasks `owner` holds, in acceptance order, in one
    transaction; the group stops early, after any task, when other units of work wait for the writer.
    Gives what was written, one per task done with, in order; the rest stay claimed for the next
    call."""
    live = dispatch_sql.live_small_tasks(tx, [c.task.seq for c in contexts], owner)  # or ClaimLost
    return _decide_small(tx, contexts, live, visible_sets, now, yield_writer=True)


def _decide_small(
    tx: Tx,
    contexts: Sequence[TaskContext],
    recalled: dict[int, bool],
    visible_sets: dict[int, frozenset[str] | None],
    now: float,
    yield_writer: bool,
) -> list[Written]:
    """Resolve, decide and write small tasks in acceptance order (`recalled`: seq -> recalled before its
    dispatch); with `yield_writer`, stop after any task when other units of work wait for the writer.

    The facts of every task (users, daily counts, same-content owners, minute counts) are read in a
    few set-wise statements up front; a `Ledger` carries each task's deliveries into the facts the next
    one sees, so the rules fall exactly where one transaction per task would put them.
    """
    userids = {c.task.seq: [str(u) for u in orjson.loads(c.task.userids)] for c in contexts}
    by_corp: dict[str, set[str]] = {}
    for c in contexts:
        by_corp.setdefault(c.task.corp_id, set()).update(userids[c.task.seq])
    known = {
        corp_id: dispatch_sql.users_active(tx, corp_id, sorted(wanted)) for corp_id, wanted in by_corp.items()
    }
    recipients = {
        c.task.seq: [(u, known[c.task.corp_id].get(u)) for u in userids[c.task.seq]] for c in contexts
    }
    ledger = Ledger()
    _load_ledger(tx, ledger, contexts, recipients)
    results: list[Written] = []
    spent: dict[tuple[int | None, int, bytes | None], int] = {}
    minutes: dict[tuple[int | None, int], int] = {}
    rows: list[delivery_sql.Row] = []
    finished: list[tuple[int, int, int, float, int]] = []
    for c in contexts:
        if yield_writer and results and dispatch_sql.others_waiting(tx):
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
        rows += _rows(task, 0, decisions, c.day, now, recalled[task.seq], written)
        delivered = facts.minute_count - before
        if delivered:
            spent.setdefault((task.agent_id, c.day, task.content_hash), task.seq)
            minutes[(task.agent_id, c.minute)] = minutes.get((task.agent_id, c.minute), 0) + delivered
        finished.append((len(batch), len(batch), delivered, now, task.seq))
        results.append(written)
    delivery_sql.insert(tx, rows)
    dispatch_sql.count_deliveries(tx, spent, minutes)
    dispatch_sql.finish_small_tasks(tx, finished)
    return results


def _load_ledger(
    tx: Tx, ledger: Ledger, contexts: Sequence[TaskContext], recipients: dict[int, list[RecipientRow]]
) -> None:
    """Read the facts a group's rules need: daily counts where a daily cap applies, same-content owners
    where another task delivered the content today, minute counts per app and minute."""
    daily_users: dict[tuple[int | None, int], set[str]] = {}
    contents: dict[tuple[int | None, int], set[bytes]] = {}
    for c in contexts:
        ledger.minutes.setdefault((c.task.agent_id, c.minute), 0)
        if c.task.content_hash is not None:
            contents.setdefault((c.task.agent_id, c.day), set()).add(c.task.content_hash)
    holders = {
        (agent_id, day): dispatch_sql.content_holders(tx, agent_id, day, sorted(hashes))
        for (agent_id, day), hashes in contents.items()
    }
    owner_users: dict[tuple[int | None, int, bytes], set[str]] = {}
    for c in contexts:
        task = c.task
        if task.content_hash is None:
            continue
        active = [u for u, ok in recipients[task.seq] if ok]
        if c.limits.daily_per_user is not None:
            daily_users.setdefault((task.agent_id, c.day), set()).update(active)
        holder = holders[(task.agent_id, c.day)].get(task.content_hash)
        if holder is not None and holder != task.seq:  # another task delivered it today
            owner_users.setdefault((task.agent_id, c.day, task.content_hash), set()).update(active)
    for (agent_id, day), users in daily_users.items():
        ledger.daily[(agent_id, day)] = dispatch_sql.daily_facts(tx, agent_id, day, sorted(users), None)[0]
    for (agent_id, day, content), users in owner_users.items():
        ledger.owners[(agent_id, day, content)] = dispatch_sql.content_owners(
            tx, agent_id, day, content, sorted(users)
        )
    for agent_id, minute in list(ledger.minutes):
        ledger.minutes[(agent_id, minute)] = dispatch_sql.minute_count(tx, agent_id, minute)


def fail_task(tx: Tx, task: TaskRow, owner: str, userids: Sequence[str], now: float) -> Written:
    """End a task that cannot be decided: the named userids it has not decided yet fail (`dispatch_error`).
    ClaimLost when `owner` no longer holds it."""
    cursor = dispatch_sql.large_task_state(tx, task.seq, owner).cursor
    decided = dispatch_sql.decided_userids(tx, task.seq)
    left = [u for u in dict.fromkeys(userids) if u not in decided][: max(0, MAX_POSITION - cursor)]
    written = Written(task, True, cursor + len(left), cursor + len(left), [], {})
    decisions = [(userid, Outcome.FAILED, "dispatch_error", None) for userid in left]
    delivery_sql.insert(tx, _rows(task, cursor, decisions, 0, now, False, written))
    dispatch_sql.end_task(tx, task.seq, written.total, now)
    written.counts = dispatch_sql.task_counts(tx, task.seq)
    return written


# -- deciding at acceptance --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecideTerms:
    """What a task is decided under when its accepting transaction may decide it too: its app's limits
    and visible range (None: the whole corp)."""

    limits: AppLimits
    visible: frozenset[str] | None


AcceptItem = tuple[PreparedTask, Callable[[], float], DecideTerms | None]


def accept_tasks(tx: Tx, items: list[AcceptItem]) -> list[tuple[int, int, Written | None]]:
    """Record accepted tasks (`task_sql.insert_tasks`) and decide, in the same transaction, those that
    came with terms and whose app has no earlier task unfinished: exactly what a dispatcher would decide
    next for them, without the claim, the second transaction and the hand-over. Gives (seq, task_id,
    what was written or None) per item, in order; a task not decided here waits for a dispatcher.

    Deciding is undone alone if it raises (a fault of ours): the tasks are still accepted, and the
    dispatcher ends any that cannot be decided (`dispatch_error`).
    """
    accepted_at = items[0][1]() if items else 0.0
    placed = task_sql.insert_tasks(tx, [task for task, _, _ in items], accepted_at)
    now_deciding = [
        (seq, task_id, task, terms)
        for (task, _, terms), (seq, task_id) in sorted(zip(items, placed, strict=True), key=lambda p: p[1][0])
    ]
    contexts = _decidable(tx, now_deciding, accepted_at)
    written: dict[int, Written] = {}
    if contexts:
        visible = {c.task.agent_id or 0: terms.visible for c, terms in contexts}
        tasks = [c for c, _ in contexts]
        not_recalled = {c.task.seq: False for c in tasks}
        try:
            with savepoint(tx, "decide_accepted"):
                results = _decide_small(tx, tasks, not_recalled, visible, accepted_at, yield_writer=False)
        except Exception as exc:
            if dispatch_sql.aborts(tx, exc):  # the store fails: the whole accept fails with it, and says why
                raise
            log.exception(
                "tasks %s could not be decided as they were accepted; a dispatcher takes them",
                ", ".join(str(c.task.task_id) for c in tasks),
            )
        else:
            written = {w.task.seq: w for w in results}
    return [(seq, task_id, written.get(seq)) for seq, task_id in placed]


def _decidable(
    tx: Tx, accepted: list[tuple[int, int, PreparedTask, DecideTerms | None]], accepted_at: float
) -> list[tuple[TaskContext, DecideTerms]]:
    """Of tasks just accepted (in seq order), those decided now: with terms, of an app with no earlier
    unfinished task and no earlier task of this group left to a dispatcher."""
    if not any(terms for _, _, _, terms in accepted):
        return []
    first = accepted[0][0]
    day, minute = dingtalk_day(accepted_at), calendar_minute(accepted_at)
    waiting: dict[int | None, bool] = {}
    chosen: list[tuple[TaskContext, DecideTerms]] = []
    for seq, task_id, task, terms in accepted:
        agent_id = task.agent_id
        if agent_id not in waiting:
            waiting[agent_id] = agent_id is None or dispatch_sql.app_waits(tx, agent_id, first)
        if terms is None or waiting[agent_id]:
            waiting[agent_id] = True  # this app's later tasks wait behind this one
            continue
        chosen.append((TaskContext(task.row(seq, task_id, accepted_at), terms.limits, day, minute), terms))
    return chosen
