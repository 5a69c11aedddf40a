"""Long waits on behalf of an HTTP client (`?wait=`, `dispatch/drain`) that end when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.types import Receive

T = TypeVar("T")


async def disconnected(receive: Receive) -> None:
    """Returns once the client has hung up (whatever of the request body is left is discarded)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class WaitAbandoned(Exception):
    """The client hung up while its request waited; nobody is left to answer."""


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; cancel it and raise WaitAbandoned if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected(request.receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise WaitAbandoned()
    return task.result()
