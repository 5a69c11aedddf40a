"""The event bus (DESIGN §2): every state change a person or harness may wait for, published once,
after the transaction that made it commits.

One bus per process. Publishers call `publish` on the event loop's thread; each subscriber holds a
bounded queue it drains at its own pace. A subscriber that falls behind is not allowed to hold the
publisher back: its queue is closed with `overflowed` set, and it must re-read the state it shows
(a live page reloads, a waiter re-checks the store). Every subscriber is told the same way when the
relay from other processes reconnects, since what they published meanwhile is lost. Nothing polls
the store to find changes.

Kinds and their data (every event also carries `corp_id`):
- `task.accepted`    task_id, source, agent_id
- `task.progress`    task_id, source, agent_id, decided, total
- `task.finished`    task_id, source, agent_id, counts {delivered, forbidden, invalid, failed}
- `message.delivered`  task_id, source, agent_id, messages [[message_id, userid], …] (one event per batch)
- `message.read`     message_id, task_id, userid
- `message.recalled` task_id, source, message_ids (None: every message of the task)
- `robot.sent`       task_id, robot_code, process_query_key, agent_id (a one-to-one batchSend)
- `group.posted`: published by the group-robot service as it lands

State events: a change of state every process keeps a copy of in memory (corp_id None; `generation`
is the state's number in `state_sql`). A process that receives one from another reloads the state
before its own subscribers see the event:
- `org.changed`      corp_ids (the corps a load named; None when the change was found by the watch
                     rather than its event), generation
- `clock.changed`    now, frozen, offset_seconds (the clock as the process now reads it), generation
- `store.reset`      generation (tasks, deliveries, counters and tokens were deleted; a
                     `clock.changed` to real time follows)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset(
    {
        "task.accepted",
        "task.progress",
        "task.finished",
        "message.delivered",
        "message.read",
        "message.recalled",
        "robot.sent",
        "group.posted",
        "org.changed",
        "clock.changed",
        "store.reset",
    }
)
QUEUE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    corp_id: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "corp_id": self.corp_id, **self.data}


Filter = Callable[[Event], bool]


class Subscription:
    """A subscriber's queue; iterate it (async) or `await get()`. Use as a context manager so it is
    removed from the bus when the subscriber goes away."""

    def __init__(self, bus: EventBus, kinds: Collection[str] | None, accept: Filter | None) -> None:
        self._bus = bus
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.accept = accept
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def wants(self, event: Event) -> bool:
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        return self.accept is None or self.accept(event)

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_SIZE - 1:
            self.lost()
            return
        self.queue.put_nowait(event)

    def lost(self) -> None:
        """Events meant for this subscriber were lost: it is told as after an overflow."""
        if not self.overflowed:
            self.overflowed = True
            self.queue.put_nowait(None)  # the slot kept free for this: tells the reader to resync

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None when `timeout` seconds pass without one, or once after an overflow
        (the caller re-reads the state it waits on; the subscription then carries on afresh)."""
        if self.overflowed:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.overflowed = False
            return None
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None:  # the overflow marker arrived while waiting
            self.overflowed = False
        return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Relay = Callable[[str, dict[str, Any]], None]


class EventBus:
    """`relay`, when set, is handed every event published here (kind, and its JSON form less the
    kind), to pass on to the other processes that share the store; events they relay back come in
    through `deliver` and reach this process's subscribers only."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.relay: Relay | None = None

    def subscribe(self, kinds: Collection[str] | None = None, accept: Filter | None = None) -> Subscription:
        """Subscribe before reading the state you wait on, so no change falls between the two."""
        unknown = set(kinds or ()) - KINDS
        if unknown:
            raise ValueError(f"unknown event kinds: {sorted(unknown)}")
        sub = Subscription(self, kinds, accept)
        self._subscribers.add(sub)
        return sub

    def publish(self, kind: str, corp_id: str | None, **data: Any) -> None:
        if self.relay is not None:
            self.relay(kind, {"corp_id": corp_id, **data})
        self._offer(kind, corp_id, data)

    def deliver(self, kind: str, relayed: dict[str, Any]) -> None:
        """An event another process published (its `relay` form), to this process's subscribers."""
        if kind in KINDS:
            data = dict(relayed)
            self._offer(kind, data.pop("corp_id", None), data)

    def lost(self) -> None:
        """Events of other processes may have been lost (the relay reconnected): every subscriber
        re-reads what it shows, as after an overflow."""
        for sub in list(self._subscribers):
            sub.lost()

    def _offer(self, kind: str, corp_id: str | None, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        event = Event(kind, corp_id, data)
        for sub in list(self._subscribers):
            if sub.wants(event):
                sub.offer(event)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
