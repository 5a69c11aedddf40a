"""Dispatcher loops: claim ready tasks in acceptance order, decide them, write the outcomes, publish.

A loop claims many tasks at once. Small tasks (userids only, no more than a batch) are resolved,
decided and written together, up to `--batch-size` recipients per transaction; a large one
(departments, everyone, more userids) is resolved once and then decided and written batch by batch,
so a restart resumes it at its cursor. With `--batch-pause` every task goes batch by batch, so its
progress can be watched.

Whatever a task holds, its dispatch ends: a task whose dispatch raises is failed (`dispatch_error`)
and logged once, and its app's later tasks go on. A store that cannot write is different: nothing is
failed, the loop waits and tries again, and the tasks resume where their last commit left them.

A wake-up is only a hint — the poll guarantees progress — and stopping is an event, never a
cancellation in the middle of a write: the write in flight commits or was never begun.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

import orjson

from dingbox.clock import calendar_minute, dingtalk_day
from dingbox.dispatch import units
from dingbox.dispatch.units import TaskContext, Written
from dingbox.runtime import Runtime
from dingbox.store import dispatch_sql
from dingbox.store.task_sql import TaskRow

log = logging.getLogger("dingbox.dispatch")
POLL_SECONDS = 0.5
RETRY_SECONDS = 1.0  # after a store failure
CLAIM_LIMIT = 1000  # tasks claimed at once


class Dispatcher:
    def __init__(self, runtime: Runtime, loops: int) -> None:
        self.rt = runtime
        self.loops = loops
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ident = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        for n in range(self.loops):
            self._tasks.append(asyncio.create_task(self._loop(f"{self._ident}-{n}"), name=f"dispatcher-{n}"))

    @property
    def dead_loops(self) -> int:
        """Loops that ended other than by `stop` (a bug): health reports them."""
        return sum(1 for t in self._tasks if t.done() and not self._stop.is_set())

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- the loop -----------------------------------------------------------------------------------

    async def _loop(self, owner: str) -> None:
        store = self.rt.store
        dirty = False  # a store failure may have left claims of ours behind
        while not self._stop.is_set():
            try:
                if dirty:
                    await store.write(dispatch_sql.release_claims, owner)
                    dirty = False
                tasks = await store.write(dispatch_sql.claim_ready, owner, time.time(), CLAIM_LIMIT)
                if not tasks:
                    await self._idle()
                    continue
                await self._run_claimed(tasks, owner)
            except Exception as exc:
                if not self.rt.store.is_failure(exc):
                    log.exception("dispatcher %s failed; retrying", owner)
                dirty = True
                await self._sleep(RETRY_SECONDS)

    async def _idle(self) -> None:
        self._wake.clear()
        timeout = POLL_SECONDS
        ready_at = await self.rt.store.read(dispatch_sql.next_ready_at, time.time())
        if ready_at is not None:
            timeout = max(0.005, min(timeout, ready_at - time.time()))
        await self._sleep(timeout, wake=True)

    async def _sleep(self, seconds: float, *, wake: bool = False) -> None:
        waits = [asyncio.ensure_future(self._stop.wait())]
        if wake:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        done, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for fut in pending:
            fut.cancel()

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
                size = task.userids.count(",") + 1
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
                written, done = await self.rt.store.write(
                    units.dispatch_small,
                    [self._context(task) for task in tasks],
                    owner,
                    visible,
                    self.rt.clock.now(),
                )
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
            tasks = tasks[done:]

    async def _visible_sets(self, tasks: Sequence[TaskRow]) -> dict[int, frozenset[str] | None]:
        """The visible range of each app among `tasks`, as a set of userids (None: the whole corp)."""
        apps = self.rt.directory.apps
        return {
            agent_id: await self.rt.visible_users(apps.get(agent_id))
            for agent_id in {task.agent_id or 0 for task in tasks}
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
        visible = await self.rt.visible_users(self.rt.directory.apps.get(task.agent_id or 0))
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
        if not await self.rt.store.write(
            dispatch_sql.begin_task, task.seq, owner, total, plan.invalid_dept_ids, now
        ):
            return
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
            if written is None:
                return
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
        if written is not None:
            self._publish(written)

    # -- shared -------------------------------------------------------------------------------------

    def _context(self, task: TaskRow) -> TaskContext:
        return TaskContext(
            task,
            self.rt.task_limits(task.agent_id, task.is_isv, template=task.source == "template"),
            dingtalk_day(task.accepted_at),
            calendar_minute(task.accepted_at),
        )

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
        log.info(
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
