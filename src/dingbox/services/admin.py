"""Test controls behind /api/v1: reset the store's traffic, move the virtual clock."""

from __future__ import annotations

from dingbox.clock import ClockState
from dingbox.runtime import Runtime
from dingbox.services.tokens import TokenService
from dingbox.store import task_sql


class AdminService:
    def __init__(self, runtime: Runtime, tokens: TokenService) -> None:
        self.rt = runtime
        self.tokens = tokens

    async def reset(self) -> None:
        """Delete traffic (tasks, deliveries, counters, tokens) and return to real time; keep the org."""
        await self.rt.store.write(task_sql.reset_traffic)
        self.tokens.forget_all()
        self.rt.clock.state = ClockState()

    async def set_clock(self, now: float, frozen: bool) -> None:
        await self.rt.save_clock(self.rt.clock.set(now, frozen))

    async def advance_clock(self, seconds: float) -> None:
        await self.rt.save_clock(self.rt.clock.advance(seconds))
