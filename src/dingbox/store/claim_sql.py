"""Claims: which dispatcher loop decides which task, safely with any number of loops in any number of
processes sharing the store.

- **Order.** One app's tasks are decided in acceptance (`seq`) order. A loop claims a task only when it
  is its app's oldest unfinished task, or when that oldest is among the tasks the same claim takes; so
  an app's claimed tasks are always a prefix of its unfinished ones, held by one loop.
- **No task twice.** Candidate rows are locked with `FOR UPDATE SKIP LOCKED` where the dialect has
  it: two claims running at once take disjoint rows, and each keeps of an app only the run of its
  candidates it could lock from the app's head on. A claim on a shared store then waits, per app, for
  the accepts still in flight (`claim_gate` against `accept_gate`, see `task_sql.insert_tasks`): a
  task accepted concurrently may carry a lower `seq` but commit later, and must not be overtaken.
- **Every write holds its claim** (`hold`): it locks the task rows it writes and checks they are still
  claimed by the writer, or raises `ClaimLost` and writes nothing. A dispatcher whose claim was taken
  over cannot write a duplicate, and a takeover waits for the write in flight.
- **Owners.** `claimed_by` is `<claimant>/<loop>`, where the claimant is the store's name for this
  process (`Store.claimant`). On a shared store a claimant is alive while its session is (PostgreSQL:
  `pg_stat_activity.application_name`); `release_dead_claims` frees the claims of processes that are
  gone, and the tasks resume at their cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dingbox.store.base import Tx, chunks, placeholders
from dingbox.store.task_sql import TASK_COLUMNS, TaskRow

CLAIM_PAGE = 500  # pending tasks read per step of a claim, in acceptance order
WINDOW_PAGES = 2  # pages a claim reads in acceptance order before it looks app by app


class ClaimLost(Exception):
    """A task a dispatcher claimed is no longer its own (taken over after its process looked dead, or
    deleted by a reset): the unit of work is rolled back, and the dispatcher claims afresh."""


def owner_name(claimant: str, loop: int) -> str:
    """The `claimed_by` of one dispatcher loop; `release_dead_claims` reads the claimant back."""
    return f"{claimant}/{loop}"


# -- claiming -------------------------------------------------------------------------------------


def claim_ready(tx: Tx, owner: str, now_real: float, limit: int) -> list[TaskRow]:
    """Claim up to `limit` ready tasks, oldest first, of the apps whose oldest unfinished task no other
    dispatcher holds.

    First finds each app's oldest unfinished task (`_free_heads`: a skip scan of
    `tasks_agent_pending`, a few index seeks per app), so a claim that finds every app held ends
    there. Then reads the `tasks_pending` index in seq order, skipping the few tasks in flight, and
    stops at the first task not ready yet (tasks become ready in acceptance order: `not_before` is the
    accept time plus one fixed delay). When those first pages hold mostly tasks of held apps, it
    reads the free apps' runs app by app instead (`_beyond_window`). So a claim costs about the same
    with 10 or 100,000 tasks pending, however many of them are held.
    """
    heads = _free_heads(tx, now_real)
    if not heads:
        return []
    candidates, window_end, more = _window(tx, now_real, limit, heads)
    if more and len(candidates) < limit:
        candidates += _beyond_window(tx, now_real, limit - len(candidates), heads, window_end)
    if not candidates:
        return []
    rows = _lock_candidates(tx, [seq for seq, _ in candidates])
    claimed = _app_prefixes(candidates, rows)
    gate = tx.sql("claim_gate")
    if gate and claimed:  # accepts and other claims run beside this one: wait for them, then look again
        claimed = _after_gate(tx, gate, claimed)
    for chunk in chunks([seq for seq, _ in claimed]):
        tx.execute(
            f"UPDATE tasks SET claimed_by = ?, claimed_at = ? WHERE seq IN ({placeholders(len(chunk))})",
            (owner, now_real, *chunk),
        )
    return sorted((rows[seq] for seq, _ in claimed), key=lambda task: task.seq)


Candidates = list[tuple[int, int | None]]  # (seq, agent_id), each app's in seq order

_APPS = (  # every agent_id with unfinished tasks (and a NULL to end on)
    "WITH RECURSIVE apps(agent_id) AS ("
    " SELECT MIN(agent_id) FROM tasks WHERE status < 2"
    " UNION ALL SELECT"
    " (SELECT MIN(t.agent_id) FROM tasks t WHERE t.status < 2 AND t.agent_id > apps.agent_id)"
    " FROM apps WHERE apps.agent_id IS NOT NULL)"
)
# Each app's oldest unfinished task and whether it is free (unclaimed and ready), oldest first, and
# the oldest free task of no app. Subqueries rather than joins, so that no planner (PostgreSQL's
# without statistics) can choose to scan the tasks.
_APP_HEADS = (
    _APPS + ", heads(agent_id, head) AS MATERIALIZED (SELECT agent_id,"
    " (SELECT MIN(seq) FROM tasks WHERE status < 2 AND agent_id = apps.agent_id)"
    " FROM apps WHERE agent_id IS NOT NULL)"
    " SELECT agent_id, head, (SELECT claimed_by IS NULL AND not_before <= ? FROM tasks WHERE seq = head)"
    " FROM heads"
    " UNION ALL SELECT NULL, MIN(seq), MIN(seq) IS NOT NULL FROM tasks"
    " WHERE status < 2 AND agent_id IS NULL AND claimed_by IS NULL AND not_before <= ?"
    " ORDER BY 2"
)


def _free_heads(tx: Tx, now_real: float) -> dict[int | None, int]:
    """agent_id -> seq of its oldest unfinished task, of the apps whose oldest one is free, oldest
    first (None: tasks of no app, which any claim may take)."""
    return {agent_id: head for agent_id, head, free in tx.all(_APP_HEADS, (now_real, now_real)) if free}


def _window(
    tx: Tx, now_real: float, limit: int, heads: dict[int | None, int]
) -> tuple[Candidates, int, bool]:
    """Candidates from the first WINDOW_PAGES pages of unclaimed unfinished tasks in seq order, of
    the free apps (each from its oldest task on); the last seq read; and whether ready tasks may lie
    beyond."""
    candidates: Candidates = []
    started: set[int | None] = {None}  # apps whose run this claim has begun at their oldest task
    after = 0
    for _ in range(WINDOW_PAGES):
        page = tx.all(
            "SELECT seq, agent_id, not_before FROM tasks WHERE status < 2 AND claimed_by IS NULL AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (after, CLAIM_PAGE),
        )
        for seq, agent_id, not_before in page:
            if not_before > now_real:
                return candidates, after, False  # the rest are not ready either
            if agent_id not in heads:
                continue
            if agent_id not in started:
                if heads[agent_id] != seq:  # claimed since the heads were read: let it be
                    del heads[agent_id]
                    continue
                started.add(agent_id)
            candidates.append((seq, agent_id))
            if len(candidates) == limit:
                return candidates, seq, False
        if len(page) < CLAIM_PAGE:
            return candidates, after, False
        after = page[-1][0]
    return candidates, after, True


def _beyond_window(
    tx: Tx, now_real: float, room: int, heads: dict[int | None, int], window_end: int
) -> Candidates:
    """Past the window: the runs of the free apps, oldest head first, read app by app off
    `tasks_agent_pending`."""
    found: Candidates = []
    for agent_id in heads:
        if agent_id is None:
            continue
        for seq, claimed_by, not_before in tx.all(
            "SELECT seq, claimed_by, not_before FROM tasks WHERE status < 2 AND agent_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (agent_id, window_end, room - len(found)),
        ):
            if claimed_by is not None or not_before > now_real:
                break
            found.append((seq, agent_id))
        if len(found) >= room:
            break
    return found


def _lock_candidates(tx: Tx, seqs: Sequence[int]) -> dict[int, TaskRow]:
    """The candidates still unclaimed and unfinished, locked where the dialect locks rows (skipping
    those another claim holds)."""
    rows: dict[int, TaskRow] = {}
    statement = tx.sql("claim_rows")
    for chunk in chunks(seqs):
        for row in tx.all(statement.format(columns=TASK_COLUMNS, marks=placeholders(len(chunk))), chunk):
            task = TaskRow(*row)
            rows[task.seq] = task
    return rows


def _app_prefixes(
    candidates: Sequence[tuple[int, int | None]], rows: dict[int, TaskRow]
) -> list[tuple[int, int | None]]:
    """Of each app, the candidates up to the first one not locked: a task another claim holds, or one
    finished or claimed since the page was read, ends the app's run."""
    kept: list[tuple[int, int | None]] = []
    broken: set[int] = set()
    for seq, agent_id in candidates:
        if agent_id in broken:
            continue
        if seq in rows:
            kept.append((seq, agent_id))
        elif agent_id is not None:
            broken.add(agent_id)
    return kept


def _after_gate(tx: Tx, gate: str, claimed: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """Wait until no accept of the claimed apps is in flight (no other claim of them can be), then keep
    of each app only the run that is still exactly its oldest unfinished tasks."""
    runs: dict[int, list[int]] = {}
    for seq, agent_id in claimed:
        if agent_id is not None:
            runs.setdefault(agent_id, []).append(seq)
    tx.execute(gate, (sorted(runs),))  # in one order everywhere, so two claims cannot deadlock
    cut: dict[int, set[int]] = {}
    for agent_id, run in runs.items():
        row = tx.one(
            "SELECT COUNT(*) FROM tasks WHERE status < 2 AND agent_id = ? AND seq <= ?", (agent_id, run[-1])
        )
        if row is not None and row[0] == len(run):
            continue
        pending = [
            r[0]
            for r in tx.all(
                "SELECT seq FROM tasks WHERE status < 2 AND agent_id = ? AND seq <= ? ORDER BY seq",
                (agent_id, run[-1]),
            )
        ]
        same = 0
        while same < len(run) and same < len(pending) and run[same] == pending[same]:
            same += 1
        cut[agent_id] = set(run[same:])
    if not cut:
        return claimed
    return [(seq, a) for seq, a in claimed if a is None or seq not in cut.get(a, ())]


def next_ready_at(tx: Tx, now_real: float) -> float | None:
    """When the oldest unclaimed task becomes ready (tasks become ready in acceptance order)."""
    row = tx.one("SELECT not_before FROM tasks WHERE status < 2 AND claimed_by IS NULL ORDER BY seq LIMIT 1")
    return None if row is None or row[0] <= now_real else float(row[0])


# -- holding a claim while writing ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """A claimed task's row as its writer finds it, locked until the write commits."""

    cursor: int
    delivered: int
    recalled_at: float | None
    total: int | None


def hold(tx: Tx, seqs: Sequence[int], owner: str) -> dict[int, Held]:
    """Lock the rows of `seqs` and give their state; ClaimLost unless every one is unfinished and still
    claimed by `owner`."""
    held: dict[int, Held] = {}
    statement = tx.sql("hold_tasks")
    for chunk in chunks(seqs):
        for seq, cursor, delivered, recalled_at, total in tx.all(
            statement.format(marks=placeholders(len(chunk))), (*chunk, owner)
        ):
            held[seq] = Held(cursor, delivered, recalled_at, total)
    if len(held) < len(set(seqs)):
        lost = sorted(set(seqs) - set(held))
        raise ClaimLost(f"{owner} no longer holds task seq {', '.join(map(str, lost[:5]))}")
    return held


# -- releasing ------------------------------------------------------------------------------------


def release_claims(tx: Tx, owner: str | None = None) -> int:
    """Free claims: every claim at start of a process that owns the whole store (no other claim can be
    alive), or one dispatcher loop's own when it stops or loses a claim (the tasks resume at their
    cursor)."""
    if owner is None:
        return tx.execute(
            "UPDATE tasks SET claimed_by = NULL, claimed_at = NULL"
            " WHERE status < 2 AND claimed_by IS NOT NULL"
        )
    return tx.execute(
        "UPDATE tasks SET claimed_by = NULL, claimed_at = NULL WHERE status < 2 AND claimed_by = ?", (owner,)
    )


# Who holds each app's oldest unfinished task (and any task of no app). An app's claimed tasks are a
# run from its oldest one on, held by one owner, so every claim of a dead process is among these, or
# comes to be once the tasks before it are finished.
_HEAD_HOLDERS = (
    _APPS + " SELECT (SELECT claimed_by FROM tasks WHERE status < 2 AND agent_id = apps.agent_id"
    " ORDER BY seq LIMIT 1) FROM apps WHERE agent_id IS NOT NULL"
    " UNION SELECT claimed_by FROM tasks WHERE status < 2 AND agent_id IS NULL"
)


def release_dead_claims(tx: Tx) -> dict[str, int]:
    """On a shared store, free the claims of dispatchers whose process is gone; gives the released
    tasks per former owner. Looks at the holders of the apps' oldest tasks only, so a sweep costs a
    few index seeks per app however long the backlog; a task whose row is locked (a write in flight,
    or a dead process's last statement still running on the server) is left for the next sweep."""
    holders = {row[0] for row in tx.all(_HEAD_HOLDERS) if row[0] is not None}
    if not holders:
        return {}
    # Read after the holders: a claimant's session opens before its first claim, so a holder seen
    # above that is still alive is listed.
    live = {row[0] for row in tx.all(tx.sql("live_claimants"))}
    released: dict[str, int] = {}
    for owner in sorted(holders):
        if owner.split("/")[0] not in live:
            count = len(tx.all(tx.sql("release_claims_of"), (owner,)))
            if count:
                released[owner] = count
    return released
