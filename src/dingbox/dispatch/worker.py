"""Dispatcher loops: claim ready tasks in acceptance order, decide them, write the outcomes, publish.

A loop claims many tasks at once. Small tasks (userids only, no more than a batch) are resolved,
decided and written together, up to `--batch-size` recipients per transaction; a large one
(departments, everyone, more userids) is resolved once and then decided and written batch by batch,
so a restart resumes it at its cursor. With `--batch-pause` every task goes batch by batch, so its
progress can be watched.

Whatever a task holds, its dispatch ends: a task whose dispatch raises is failed (`dispatch_error`)
and logged once, and its app's later tasks go on. A store that cannot write is different: nothing is
failed, the loop waits and tries again, and the tasks resume where their last commit left them.

Claims (`store/claim_sql.py`) keep one app's tasks in acceptance order and every task with one
writer, however many loops and processes share the store. A loop whose claim was taken over (its
process looked dead) or whose task was deleted (a reset) gets ClaimLost from its next write, which
is then never made: it releases what it still holds and claims afresh. On a store shared with other
processes, each process also sweeps the claims of processes that are gone (`release_dead_claims`,
about once a second), and its loops wake when any process accepts a task (the event bus relays
`task.accepted`), not only at their poll.

A wake-up is only a hint — the poll guarantees progress — and stopping is an event, never a
cancellation in the middle of a write: the write in flight commits or was never begun. A loop that
stops releases its claims, so another process's dispatchers go on with its tasks at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import orjson

from dingbox import logs
from dingbox.clock import calendar_minute, dingtalk_day
from dingbox.dispatch import units
from dingbox.dispatch.units import DecideTerms, TaskContext, Written
from dingbox.domain.limits import AppLimits
from dingbox.runtime import Runtime
from dingbox.store import claim_sql, dispatch_sql
from dingbox.store.claim_sql import ClaimLost
from dingbox.store.task_sql import NewTask, TaskRow

log = logging.getLogger("dingbox.dispatch")
POLL_SECONDS = 0.5
RETRY_SECONDS = 1.0  # after a store failure
CLAIM_LIMIT = 1000  # tasks claimed at once
SWEEP_SECONDS = 1.0  # between two looks for the claims of dead processes, on a shared store
ACCEPT_DECIDES = 100  # most userids of a task decided in its accepting transaction (a send's usual size)


class Dispatcher:
    def __init__(self, runtime: Runtime, loops: int) -> None:
        self.rt = runtime
        self.loops = loops
        self._wakes = [asyncio.Event() for _ in range(loops)]  # one per loop: each clears its own
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._helpers: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        for wake in self._wakes:
            wake.set()

    # -- tasks decided as they are accepted -------------------------------------------------------

    async def terms(self, task: NewTask) -> DecideTerms | None:
        """The terms a task is decided under in its accepting transaction, or None when it waits for a
        loop: when this process dispatches nothing, shares its store (claims keep the order across
        processes), delays or paces dispatch (`--dispatch-delay`, `--batch-pause`: the task must be
        seen waiting), or the task is not a short list of userids (`ACCEPT_DECIDES`)."""
        settings = self.rt.settings
        if (
            not self.loops
            or self._stop.is_set()
            or self.rt.store.shared
            or settings.dispatch_delay > 0
            or settings.batch_pause
            or not task.userids
            or not dispatch_sql.small_send(
                len(task.userids),
                bool(task.dept_ids),
                task.to_all_user,
                min(ACCEPT_DECIDES, settings.batch_size),
            )
        ):
            return None
        limits = self._limits(task.agent_id, task.app_type == "isv", task.source)
        return DecideTerms(limits, await self._visible(task.agent_id))

    def accepted(self, written: Written | None) -> None:
        """After an accept commits: publish what it decided, or wake a loop for the task."""
        if written is None:
            self.wake()
        else:
            self._publish(written)

    def start(self) -> None:
        for n in range(self.loops):
            self._tasks.append(asyncio.create_task(self._loop(n), name=f"dispatcher-{n}"))
        if self.loops and self.rt.store.shared:
            # Other processes claim and accept too: take over the claims of the dead ones, and wake on
            # their accepts. (On a store this process owns, every accept is its own and calls `wake`.)
            self._helpers.append(asyncio.create_task(self._sweep(), name="dispatcher-sweep"))
            self._helpers.append(asyncio.create_task(self._watch_accepts(), name="dispatcher-wake"))

    @property
    def dead_loops(self) -> int:
        """Loops that ended other than by `stop` (a bug): health reports them."""
        return sum(1 for t in self._tasks if t.done() and not self._stop.is_set())

    async def stop(self) -> None:
        self._stop.set()
        self.wake()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for helper in self._helpers:  # they only read and sweep: no write of theirs is cut short
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        self._helpers.clear()

    # -- the loop -----------------------------------------------------------------------------------

    async def _loop(self, n: int) -> None:
        store, wake = self.rt.store, self._wakes[n]
        owner = await self._owner(n)
        if owner is None:
            return
        dirty = False  # a store failure or a lost claim may have left claims of ours behind
        try:
            while not self._stop.is_set():
                try:
                    if store.claimant() is None:  # the others cannot see us alive: claim nothing
                        await self._sleep(RETRY_SECONDS, wake)
                        continue
                    if dirty:
                        await store.write(claim_sql.release_claims, owner)
                        dirty = False
                    wake.clear()  # before claiming: a task accepted from here on wakes the idle wait
                    tasks = await store.write(claim_sql.claim_ready, owner, time.time(), CLAIM_LIMIT)
                    if not tasks:
                        await self._idle(wake)
                        continue
                    await self._run_claimed(tasks, owner)
                except ClaimLost as exc:
                    log.info("dispatcher %s: %s; claiming afresh", owner, exc)
                    dirty = True
                except Exception as exc:
                    if not store.is_failure(exc):
                        log.exception("dispatcher %s failed; retrying", owner)
                    dirty = True
                    await self._sleep(RETRY_SECONDS)
        finally:
            await self._release(owner)

    async def _owner(self, n: int) -> str | None:
        """This loop's name in its claims, once the store can show this process alive; None if the
        dispatcher stops first."""
        while not self._stop.is_set():
            claimant = self.rt.store.claimant()
            if claimant is not None:
                return claim_sql.owner_name(claimant, n)
            await self._sleep(0.05)
        return None

    async def _release(self, owner: str) -> None:
        """Leave this loop's unfinished tasks to the other dispatchers (they resume at the cursor)."""
        try:
            await self.rt.store.write(claim_sql.release_claims, owner)
        except Exception as exc:  # the store is failing or closing: a later sweep or start frees them
            log.warning("dispatcher %s could not release its claims: %s", owner, exc)

    async def _idle(self, wake: asyncio.Event) -> None:
        timeout = POLL_SECONDS
        ready_at = await self.rt.store.read(claim_sql.next_ready_at, time.time())
        if ready_at is not None:
            timeout = max(0.005, min(timeout, ready_at - time.time()))
        await self._sleep(timeout, wake)

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        waits = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        done, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for fut in pending:
            fut.cancel()

    # -- other processes ----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Free the claims of dispatchers whose process is gone, so that the loops take them over."""
        store = self.rt.store
        while not self._stop.is_set():
            if store.claimant() is not None:  # while we cannot be seen alive, the others sweep
                try:
                    released = await store.write(claim_sql.release_dead_claims)
                except Exception as exc:
                    if not store.is_failure(exc):
                        log.exception("sweeping dead claims failed")
                else:
                    for owner, count in sorted(released.items()):
                        log.warning(
                            "dispatcher %s is gone; %d task(s) it claimed resume here or elsewhere",
                            owner,
                            count,
                        )
                    if released:
                        self.wake()
            await self._sleep(SWEEP_SECONDS)

    async def _watch_accepts(self) -> None:
        """Wake the loops on every accepted task, whichever process accepted it."""
        with self.rt.events.subscribe(("task.accepted",)) as accepted:
            while True:
                await accepted.get()  # an event, or None after an overflow: tasks wait either way
                self.wake()

    async def _run_claimed(self, tasks: Sequence[TaskRow], owner: str) -> None:
        """Run claimed tasks in acceptance order: runs of small ones as groups, large ones alone."""
        batch = self.rt.settings.batch_size
        grouping = not self.rt.settings.batch_pause
        group: list[TaskRow] = []
        recipients = 0
        for task in tasks:
            if self._stop.is_set():
                return
            if grouping and dispatch_sql.is_small(task, batch):
                size = dispatch_sql.userid_count(task)
                if group and recipients + size > batch:
                    await self._run_group(group, owner)
                    group, recipients = [], 0
                group.append(task)
                recipients += size
                continue
            if group:
                await self._run_group(group, owner)
                group, recipients = [], 0
            await self._guarded(task, owner, self._run_large(task, owner))
        if group and not self._stop.is_set():
            await self._run_group(group, owner)

    # -- small tasks: many per transaction --------------------------------------------------------

    async def _run_group(self, tasks: list[TaskRow], owner: str) -> None:
        visible = await self._visible_sets(tasks)
        while tasks and not self._stop.is_set():
            try:
                written = await self.rt.store.write(
                    units.dispatch_small,
                    [self._context(task) for task in tasks],
                    owner,
                    visible,
                    self.rt.clock.now(),
                )
            except ClaimLost:
                raise
            except Exception as exc:
                if self.rt.store.is_failure(exc):
                    raise
                if len(tasks) == 1:
                    await self._fail(tasks[0], owner, exc)
                    return
                for task in tasks:  # find the task that cannot be decided; the others go on
                    await self._run_group([task], owner)
                return
            for item in written:
                self._publish(item)
            tasks = tasks[len(written) :]

    async def _visible_sets(self, tasks: Sequence[TaskRow]) -> dict[int, frozenset[str] | None]:
        """The visible range of each app among `tasks`, as a set of userids (None: the whole corp)."""
        return {
            agent_id: await self._visible(agent_id) for agent_id in {task.agent_id or 0 for task in tasks}
        }

    # -- large tasks: resolved once, written batch by batch -----------------------------------------

    async def _run_large(self, task: TaskRow, owner: str) -> None:
        ctx = self._context(task)
        plan = await self.rt.store.read(
            dispatch_sql.resolve,
            task.corp_id,
            _json_list(task.userids),
            _json_list(task.dept_ids),
            bool(task.to_all_user),
        )
        visible = await self._visible(task.agent_id)
        recipients = plan.recipients
        if len(recipients) > units.MAX_POSITION:  # message ids hold the position in POS_BITS bits
            log.warning(
                "task %s resolves to %d recipients; deciding the first %d",
                task.task_id,
                len(recipients),
                units.MAX_POSITION,
            )
            recipients = recipients[: units.MAX_POSITION]
        total = len(recipients)
        now = self.rt.clock.now()
        await self.rt.store.write(dispatch_sql.begin_task, task.seq, owner, total, plan.invalid_dept_ids, now)
        if total == 0:
            self._publish(Written(task, True, 0, 0, [], {}))
            return
        # Per-recipient facts (same-content owner, daily count) can be skipped when there is no daily
        # cap and no other task delivered this content today; a resumed task always reads them, since
        # a changed org may put a recipient it already delivered at a new position.
        recipient_facts = (
            ctx.limits.daily_per_user is not None
            or task.cursor > 0
            or (
                task.content_hash is not None
                and await self.rt.store.read(dispatch_sql.content_delivered_elsewhere, task, ctx.day)
            )
        )
        most = self.rt.settings.batch_size
        pos = task.cursor
        counts: dict[str, int] = {}
        while pos < total and not self._stop.is_set():
            written = await self.rt.store.write(
                units.apply_batch,
                ctx,
                owner,
                pos,
                recipients,
                visible,
                self.rt.clock.now(),
                time.time(),
                most,
                recipient_facts,
            )
            for name, n in written.counts.items():
                counts[name] = counts.get(name, 0) + n
            written.counts = counts
            if written.finished and task.cursor > 0:  # resumed: earlier batches counted elsewhere
                written.counts = await self.rt.store.read(dispatch_sql.task_counts, task.seq)
            self._publish(written)
            pos = written.decided
            if self.rt.settings.batch_pause and pos < total:
                await self._sleep(self.rt.settings.batch_pause)

    # -- failures -----------------------------------------------------------------------------------

    async def _guarded(self, task: TaskRow, owner: str, work: Coroutine[Any, Any, None]) -> None:
        """Run one task's dispatch; a failure other than the store's ends the task (`dispatch_error`)."""
        try:
            await work
        except ClaimLost:
            raise
        except Exception as exc:
            if self.rt.store.is_failure(exc):
                raise
            await self._fail(task, owner, exc)

    async def _fail(self, task: TaskRow, owner: str, exc: Exception) -> None:
        log.error(
            "task %s of app %s cannot be dispatched; its recipients fail with dispatch_error: %s: %s",
            task.task_id,
            task.agent_id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        try:
            written = await self.rt.store.write(
                units.fail_task, task, owner, _named_userids(task), self.rt.clock.now()
            )
        except Exception as again:
            if self.rt.store.is_failure(again):
                raise
            # the failure rows themselves cannot be written (a userid PostgreSQL cannot hold): the task
            # still ends, without them, or the loop would claim it again forever and stall its app
            log.error("task %s: its dispatch_error rows cannot be written either: %s", task.task_id, again)
            written = await self.rt.store.write(units.fail_task, task, owner, [], self.rt.clock.now())
        self._publish(written)

    # -- shared -------------------------------------------------------------------------------------

    def _context(self, task: TaskRow) -> TaskContext:
        limits = self._limits(task.agent_id, task.is_isv, task.source)
        return TaskContext(task, limits, dingtalk_day(task.accepted_at), calendar_minute(task.accepted_at))

    def _limits(self, agent_id: int | None, is_isv: bool, source: str) -> AppLimits:
        """The limits a task of this app and source is decided under (templates have their own)."""
        return self.rt.task_limits(agent_id, is_isv, template=source == "template")

    async def _visible(self, agent_id: int | None) -> frozenset[str] | None:
        """The userids of an app's visible range (None: the whole corp, or an app the org lost)."""
        return await self.rt.visible_users(self.rt.directory.apps.get(agent_id or 0))

    def _publish(self, written: Written) -> None:
        task, events = written.task, self.rt.events
        common = {"task_id": task.task_id, "source": task.source, "agent_id": task.agent_id}
        if written.delivered:
            events.publish("message.delivered", task.corp_id, messages=written.delivered, **common)
        if not written.finished:
            events.publish(
                "task.progress", task.corp_id, decided=written.decided, total=written.total, **common
            )
            return
        events.publish("task.finished", task.corp_id, counts=written.counts, **common)
        logs.info(
            log,
            "task %s of app %s dispatched: %d recipients, %s",
            task.task_id,
            task.agent_id,
            written.total,
            ", ".join(f"{n} {name}" for name, n in sorted(written.counts.items())) or "none decided",
        )


def _json_list(text: str) -> list[str]:
    return [str(v) for v in orjson.loads(text)]


def _named_userids(task: TaskRow) -> list[str]:
    """The userids a task names, when its stored list can be read at all: they receive the failure."""
    try:
        return _json_list(task.userids)
    except (ValueError, TypeError):
        return []
