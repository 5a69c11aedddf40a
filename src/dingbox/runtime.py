"""What every service shares in one process: settings, the store, the virtual clock, the directory and
the event bus.

The clock and the directory are copies of state in the store. On a store several processes share,
each copy follows the changes other processes make: a change bumps its state's generation
(`state_sql`) and publishes a state event (`org.changed`, `clock.changed`, `store.reset`) that the
store relays; a process that receives one reloads that state, then hands the event to its own
subscribers. The listener's watch compares the stored generations with the copies' once a second,
so a change whose notification was lost is taken up too (docs/architecture.md, "Scale-out").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from dingbox.clock import Clock, ClockState
from dingbox.domain.directory import AppInfo, Directory
from dingbox.domain.limits import AppLimits, LimitsProfile
from dingbox.events import EventBus
from dingbox.settings import Settings
from dingbox.store import Store, dispatch_sql, state_sql
from dingbox.store.base import Watch

log = logging.getLogger("dingbox")

# the event announcing a change of each state copied in memory, and back
STATE_EVENTS = {"org": "org.changed", "clock": "clock.changed", "reset": "store.reset"}
_STATE_OF = {kind: state for state, kind in STATE_EVENTS.items()}


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
        # the generation of each state this process's copy is (state_sql.STATES)
        self.generations: dict[str, int] = dict.fromkeys(state_sql.STATES, 0)
        self.on_reset: list[Callable[[], None]] = []  # what forgets the traffic a reset deletes
        self._arrived: dict[str, list[dict[str, Any]]] = {}  # relayed state events not yet followed
        self._following: dict[str, asyncio.Task[None]] = {}
        self._behind: dict[str, int] = {}  # stored generations the last watch found ahead of ours
        self._relay_connected = False  # the listener has connected once: a later connect is a return

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
        and theirs come in (the store's listener thread hands them to this loop), and the stored
        generations are watched."""
        if not self.store.shared:
            return
        loop = asyncio.get_running_loop()

        def arrived(kind: str, relayed: dict[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(self._relayed, kind, relayed)
            except RuntimeError:  # the loop has closed: the process is stopping
                pass

        def watched(stored: dict[str, int], reconnected: bool) -> None:
            try:
                loop.call_soon_threadsafe(self._watched, stored, reconnected)
            except RuntimeError:
                pass

        self.store.relay(arrived, Watch(state_sql.generations, watched))
        self.events.relay = self.store.broadcast

    async def stop(self) -> None:
        self.events.relay = None
        following = list(self._following.values())
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)

    # -- the copies, and changes this process makes --------------------------------------------------

    def refresh_sync(self) -> None:
        """Load what is copied in memory from the store (at start, before serving)."""
        clock, clock_generation = self.store.read_sync(state_sql.clock)
        directory, org_generation = self.store.read_sync(state_sql.directory)
        self.clock = Clock(clock)
        self._set_directory(directory)
        self.generations = {
            **self.store.read_sync(state_sql.generations),
            "clock": clock_generation,
            "org": org_generation,
        }

    def _set_directory(self, directory: Directory) -> None:
        self.directory = directory
        self._app_limits = {}
        self._visible = {}

    def _newer(self, state: str, generation: int) -> bool:
        """Whether `generation` of `state` is at least the copy's; if so it becomes the copy's."""
        if generation < self.generations[state]:
            return False
        self.generations[state] = generation
        return True

    async def _load_directory(self) -> None:
        directory, generation = await self.store.read(state_sql.directory)
        if self._newer("org", generation):
            self._set_directory(directory)

    async def _load_clock(self) -> None:
        state, generation = await self.store.read(state_sql.clock)
        if self._newer("clock", generation):
            self.clock = Clock(state)

    async def org_loaded(self, generation: int, corp_ids: list[str]) -> None:
        """After this process loaded corps (generation `generation`): reload the directory, tell all."""
        await self._load_directory()
        self.events.publish("org.changed", None, corp_ids=corp_ids, generation=generation)

    async def set_clock(self, state: ClockState) -> None:
        generation = await self.store.write(state_sql.set_clock, state)
        self._clock_changed(state, generation)

    async def advance_clock(self, seconds: float) -> None:
        self._clock_changed(*await self.store.write(state_sql.advance_clock, seconds))

    def _clock_changed(self, state: ClockState, generation: int) -> None:
        if self._newer("clock", generation):
            self.clock = Clock(state)
        self.events.publish("clock.changed", None, generation=generation, **self.clock.describe())

    async def reset_traffic(self) -> None:
        """Delete the traffic (tasks, deliveries, counters, tokens) and return to real time."""
        changed = await self.store.write(state_sql.reset_traffic)
        self._forget_traffic(changed["reset"])
        self.events.publish("store.reset", None, generation=changed["reset"])
        self._clock_changed(ClockState(), changed["clock"])

    def _forget_traffic(self, generation: int) -> None:
        if self._newer("reset", generation):
            for forget in self.on_reset:
                forget()

    # -- changes other processes make -----------------------------------------------------------------

    def _relayed(self, kind: str, relayed: dict[str, Any]) -> None:
        state = _STATE_OF.get(kind)
        if state is None:
            self.events.deliver(kind, relayed)
            return
        generation = relayed.get("generation")
        if isinstance(generation, int) and generation > self.generations[state]:
            self._follow(state, relayed)

    def _watched(self, stored: dict[str, int], reconnected: bool) -> None:
        """The stored generations, from the listener's watch. One ahead of the copy's on two watches
        in a row (or right after the listener reconnected) lost its notification: follow it here.
        (One watch is not enough: its notification may be a few milliseconds behind the commit.)
        After a reconnect every subscriber is told that events may have been lost."""
        if reconnected:
            if self._relay_connected:
                log.warning("events of other processes may have been lost; subscribers re-read")
                self.events.lost()
            self._relay_connected = True
        for state, generation in stored.items():
            if state not in self.generations or generation <= self.generations[state]:
                self._behind.pop(state, None)
                continue
            previous = self._behind.get(state)
            if reconnected or (previous is not None and previous > self.generations[state]):
                log.info("%s of generation %d had not arrived; following it", STATE_EVENTS[state], generation)
                missed: dict[str, Any] = {"corp_id": None, "generation": generation}
                if state == "org":
                    missed["corp_ids"] = None  # which corps the load named is not stored
                self._follow(state, missed)
            self._behind[state] = generation

    def _follow(self, state: str, relayed: dict[str, Any]) -> None:
        """Reload `state` from the store, then hand the event(s) to this process's subscribers: one
        who sees `org.changed` here can rely on this process having the new org. One reload at a time
        per state; events that arrive meanwhile share the next."""
        self._arrived.setdefault(state, []).append(relayed)
        if state not in self._following:
            self._following[state] = asyncio.create_task(self._reload(state), name=f"follow-{state}")

    async def _reload(self, state: str) -> None:
        try:
            while arrived := self._arrived.pop(state, None):
                before = self.generations[state]
                try:
                    if state == "org":
                        await self._load_directory()
                    elif state == "clock":
                        await self._load_clock()
                    else:
                        self._forget_traffic(max(r["generation"] for r in arrived))
                except Exception as exc:  # the watch will find the state still behind and try again
                    log.warning("cannot reload %s: %s", state, exc)
                    continue
                kind = STATE_EVENTS[state]
                for relayed in sorted(arrived, key=lambda r: int(r["generation"])):
                    if relayed["generation"] > before:
                        before = relayed["generation"]
                        if state == "clock":  # as this process's clock now reads
                            relayed = {**relayed, **self.clock.describe()}
                        self.events.deliver(kind, relayed)
        finally:
            self._following.pop(state, None)
