"""What every service shares in one process: settings, the store, the virtual clock and the directory."""

from __future__ import annotations

from dingbox.clock import Clock, ClockState
from dingbox.domain.directory import Directory
from dingbox.domain.limits import LimitsProfile
from dingbox.settings import Settings
from dingbox.store import Store, org_sql, token_sql


class Runtime:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.clock = Clock()
        self.directory = Directory()
        self.limits = LimitsProfile.named(settings.limits)

    def refresh_sync(self) -> None:
        """Load what is cached in memory from the store (at start, before serving)."""
        self.clock = Clock(self.store.read_sync(token_sql.load_clock))
        self.directory = self.store.read_sync(org_sql.load_directory)

    async def reload_directory(self) -> None:
        self.directory = await self.store.read(org_sql.load_directory)

    async def save_clock(self, state: ClockState) -> None:
        await self.store.write(token_sql.save_clock, state)
