"""Dispatcher loops: wake on a new task, a poll or stop; claim; resolve; decide and write batch by batch.

A wake-up is only a hint — the poll guarantees progress — and stopping is an event, never a
cancellation in the middle of a batch: the batch in flight commits or was never begun.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import orjson

from dingbox.clock import calendar_minute, dingtalk_day
from dingbox.runtime import Runtime
from dingbox.store import dispatch_sql
from dingbox.store.task_sql import POS_BITS, TaskRow

log = logging.getLogger("dingbox.dispatch")
POLL_SECONDS = 0.5
MAX_RECIPIENTS = (1 << POS_BITS) - 1


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

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, owner: str) -> None:
        while not self._stop.is_set():
            try:
                task = await self.rt.store.write(dispatch_sql.claim_next, owner, time.time())
                if task is None:
                    await self._idle()
                    continue
                await self._run(task, owner)
                self._wake.set()  # the next task of the same app may be claimable now
            except Exception:
                log.exception("dispatcher %s failed; retrying", owner)
                await self._sleep(POLL_SECONDS)

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

    async def _run(self, task: TaskRow, owner: str) -> None:
        app = self.rt.directory.apps.get(task.agent_id or 0)
        visibility = app.visible_to if app else None
        plan = await self.rt.store.read(
            dispatch_sql.resolve,
            task.corp_id,
            _json_list(task.userids),
            _json_list(task.dept_ids),
            bool(task.to_all_user),
            visibility,
        )
        recipients = plan.recipients
        if len(recipients) > MAX_RECIPIENTS:  # message ids hold the position in POS_BITS bits
            log.warning(
                "task %s resolves to %d recipients; deciding the first %d",
                task.task_id,
                len(recipients),
                MAX_RECIPIENTS,
            )
            recipients = recipients[:MAX_RECIPIENTS]
        total = len(recipients)
        now = self.rt.clock.now()
        if not await self.rt.store.write(
            dispatch_sql.begin_task, task.seq, owner, total, plan.invalid_dept_ids, now
        ):
            return
        if total == 0:
            self._finished(task)
            return
        limits = self.rt.task_limits(task.agent_id, task.is_isv, template=task.source == "template")
        day, minute = dingtalk_day(task.accepted_at), calendar_minute(task.accepted_at)
        # Per-recipient facts (same-content owner, daily count) can be skipped when there is no daily
        # cap and no other task delivered this content today; a resumed task always reads them, since
        # a changed org may put a recipient it already delivered at a new position.
        recipient_facts = (
            limits.daily_per_user is not None
            or task.cursor > 0
            or (
                task.content_hash is not None
                and await self.rt.store.read(dispatch_sql.content_delivered_elsewhere, task, day)
            )
        )
        size = self.rt.settings.batch_size
        pos = task.cursor
        while pos < total and not self._stop.is_set():
            batch = recipients[pos : pos + size]
            applied = await self.rt.store.write(
                dispatch_sql.apply_batch,
                task,
                owner,
                pos,
                batch,
                plan.visible,
                limits,
                day,
                minute,
                self.rt.clock.now(),
                time.time(),
                recipient_facts,
            )
            if not applied:
                return
            pos += len(batch)
            if pos >= total:
                self._finished(task)
            if self.rt.settings.batch_pause and pos < total:
                await self._sleep(self.rt.settings.batch_pause)

    def _finished(self, task: TaskRow) -> None:
        self.rt.events.publish(
            "task.finished", task.corp_id, task_id=task.task_id, source=task.source, agent_id=task.agent_id
        )


def _json_list(text: str) -> list[str]:
    return [str(v) for v in orjson.loads(text)]
