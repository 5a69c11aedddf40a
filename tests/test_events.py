"""The event bus as clients meet it: waits wake on events, and stop when their client goes away."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

from dingbox.events import QUEUE_SIZE, EventBus
from support import Client


def subscribers(c: Client) -> int:
    text = c.http.get(c.base + "/metrics").text
    match = re.search(r"^dingbox_event_subscribers (\d+)$", text, re.M)
    assert match, text
    return int(match.group(1))


def wait_until(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_waits_end_when_their_client_hangs_up(start_server: Any) -> None:
    server = start_server("--dispatch-delay", "120")
    c = Client(server.url)
    task_id = c.send(c.token(), userid_list="alice")["task_id"]
    base = subscribers(c)  # the server's own (a dispatcher on a shared store listens for accepts)
    for target in (f"/api/v1/tasks/{task_id}?wait=60", "/api/v1/dispatch/drain?timeout=60"):
        method = "GET" if "tasks" in target else "POST"
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode())
        assert wait_until(lambda: subscribers(c) == base + 1), target
        sock.close()
        assert wait_until(lambda: subscribers(c) == base), f"{target}: the wait outlived its client"


def test_task_wait_wakes_when_the_task_finishes(start_server: Any) -> None:
    c = Client(start_server("--dispatch-delay", "1.5").url)
    task_id = c.send(c.token(), userid_list="alice")["task_id"]
    t0 = time.monotonic()
    task = c.task(task_id, wait=30)
    took = time.monotonic() - t0
    assert task["status"] == 2
    assert took < 2.5  # the dispatch delay plus a wake-up, not a poll interval or the whole wait


def test_a_subscriber_that_falls_behind_is_told_once_and_carries_on() -> None:
    """The publisher never waits: a full queue is dropped and `get` says so once (None), so a waiter
    re-reads the state it waits on and then receives new events as before."""

    async def scenario() -> tuple[bool, list[Any], Any]:
        bus = EventBus()
        with bus.subscribe(["task.finished"]) as sub:
            for n in range(QUEUE_SIZE + 5):
                bus.publish("task.finished", "c", task_id=n)
            overflowed = sub.overflowed
            told = [await sub.get(0.01), await sub.get(0.01)]
            bus.publish("task.finished", "c", task_id=-1)
            after = await sub.get(1)
        return overflowed, told, after

    overflowed, told, after = asyncio.run(scenario())
    assert overflowed
    assert told == [None, None]  # once for the overflow, then a plain timeout: no busy loop of Nones
    assert after is not None and after.data == {"task_id": -1}
