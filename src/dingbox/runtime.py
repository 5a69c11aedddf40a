"""What every service shares in one process: settings, the store, the virtual clock, the directory and
the event bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dingbox.clock import Clock, ClockState
from dingbox.domain.directory import AppInfo, Directory
from dingbox.domain.limits import AppLimits, LimitsProfile
from dingbox.events import EventBus
from dingbox.settings import Settings
from dingbox.store import Store, dispatch_sql, org_sql, token_sql


class Runtime:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.clock = Clock()
        self.directory = Directory()
        self.events = EventBus()
        self.dead_dispatch_loops: Callable[[], int] = lambda: 0  # set by whoever runs dispatchers
        self.limits = LimitsProfile.named(settings.limits)
        self._app_limits: dict[tuple[int, bool], AppLimits] = {}
        self._visible: dict[int, frozenset[str]] = {}

    def app_limits(self, app: AppInfo, *, template: bool = False) -> AppLimits:
        """The limits an app's sends run under (profile and org overrides), computed once per org load."""
        key = (app.agent_id, template)
        limits = self._app_limits.get(key)
        if limits is None:
            limits = self._app_limits[key] = self.limits.for_app(app.is_isv, app.limits, template=template)
        return limits

    def task_limits(self, agent_id: int | None, is_isv: bool, *, template: bool = False) -> AppLimits:
        """The limits of a stored task's app; the profile's own when the org no longer has the app."""
        app = self.directory.apps.get(agent_id or 0)
        if app is None:
            return self.limits.for_app(is_isv, {}, template=template)
        return self.app_limits(app, template=template)

    async def visible_users(self, app: AppInfo | None) -> frozenset[str] | None:
        """The userids an app's visible range holds (None: the whole corp, or an app the org no longer
        has), read once per org load: a range over a large department is a subtree of every member."""
        if app is None or app.visible_to is None:
            return None
        cache = self._visible  # an org load while reading replaces it; this answer stays with the old
        found = cache.get(app.agent_id)
        if found is None:
            found = cache[app.agent_id] = await self.store.read(
                dispatch_sql.visible_set, app.corp_id, app.visible_to
            )
        return found

    def start(self) -> None:
        """On the event loop, before serving: on a store other processes share, events cross to them
        and theirs come in (the store's listener thread hands them to this loop)."""
        if not self.store.shared:
            return
        loop = asyncio.get_running_loop()
        events = self.events

        def arrived(kind: str, relayed: dict[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(events.deliver, kind, relayed)
            except RuntimeError:  # the loop has closed: the process is stopping
                pass

        self.store.relay(arrived)
        events.relay = self.store.broadcast

    async def stop(self) -> None:
        self.events.relay = None

    def _set_directory(self, directory: Directory) -> None:
        self.directory = directory
        self._app_limits = {}
        self._visible = {}

    def refresh_sync(self) -> None:
        """Load what is cached in memory from the store (at start, before serving)."""
        self.clock = Clock(self.store.read_sync(token_sql.load_clock))
        self._set_directory(self.store.read_sync(org_sql.load_directory))

    async def reload_directory(self) -> None:
        self._set_directory(await self.store.read(org_sql.load_directory))

    async def save_clock(self, state: ClockState) -> None:
        await self.store.write(token_sql.save_clock, state)
