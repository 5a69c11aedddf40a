"""Operations behind /api/v1: health, and the test controls (reset the store's traffic, move the clock)."""

from __future__ import annotations

import time
from typing import Any

from dingbox.clock import Clock
from dingbox.runtime import Runtime
from dingbox.store import task_sql, token_sql


class AdminService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def health(self) -> dict[str, Any]:
        """`status` ok, or degraded with a `reason` while the store cannot write or a dispatcher loop died."""
        store = self.rt.store
        reasons = []
        if store.failure is not None:
            try:  # a failing store is probed, so health turns ok as soon as writes succeed again
                await store.write(token_sql.probe, time.time())
            except Exception:
                pass
        if store.failure is not None:
            reasons.append(f"the store cannot write: {store.failure}")
        dead = self.rt.dead_dispatch_loops()
        if dead:
            reasons.append(f"{dead} dispatcher loop(s) stopped")
        body: dict[str, Any] = {"status": "degraded" if reasons else "ok"}
        try:
            pending, oldest = await store.read(task_sql.pending_stats)
            body["pending_tasks"] = pending
            body["dispatch_lag_seconds"] = round(max(0.0, time.time() - oldest), 3) if oldest else 0.0
        except Exception as exc:
            body["status"] = "degraded"
            reasons.append(f"the store cannot be read: {exc}")
        if reasons:
            body["reason"] = "; ".join(reasons)
        return body

    async def reset(self) -> None:
        """Delete traffic (tasks, deliveries, counters, tokens) and return to real time; keep the org.
        Every process forgets the tokens it holds (`Runtime.on_reset`)."""
        await self.rt.reset_traffic()

    async def set_clock(self, now: float, frozen: bool) -> None:
        await self.rt.set_clock(Clock().set(now, frozen))

    async def advance_clock(self, seconds: float) -> None:
        await self.rt.advance_clock(seconds)
