"""`GET /api/v1/events`: the event bus as server-sent events, and the stream response the UI shares.

A stream subscribes before it answers, says `ready` once it does, then sends each event as it is
published. It ends when its client hangs up (noticed while idle too, not only on the next write), or
with an `overflow` event when the client reads too slowly for the bus: the client re-reads what it
shows and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dingbox.api.waits import disconnected
from dingbox.events import KINDS, Event
from dingbox.services.container import Services

log = logging.getLogger("dingbox")
HEARTBEAT_SECONDS = 15.0  # a comment line now and then keeps proxies from closing an idle stream


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; the JSON of `data` holds no raw newline, so one `data:` line carries it."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventStream(Response):
    """A response streaming `chunks` until they end or the client disconnects, whichever is first.

    `chunks` should subscribe inside itself: if the client is gone before it starts, it never runs
    and holds nothing."""

    def __init__(self, chunks: AsyncGenerator[bytes, None], headers: dict[str, str] | None = None) -> None:
        self.chunks = chunks
        self.extra_headers = headers or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-store",
            "x-accel-buffering": "no",
            **self.extra_headers,
        }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        pump = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(disconnected(receive))
        stopping = False
        try:
            await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # the server's graceful shutdown cancels requests still open: a stream ends, not fails
            stopping = True
        finally:
            watcher.cancel()
            pump.cancel()
            await asyncio.gather(pump, watcher, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.chunks.aclose()  # closes the subscription
        if stopping or not pump.cancelled():
            failure = None if pump.cancelled() else pump.exception()
            if failure is not None and not isinstance(failure, OSError):
                log.error("event stream failed", exc_info=failure)
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send) -> None:
        # the pending read is kept across heartbeats: cancelling it would end the generator
        pending: asyncio.Future[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(self.chunks.__anext__())
                done, _ = await asyncio.wait((pending,), timeout=HEARTBEAT_SECONDS)
                if not done:
                    chunk = b": keep-alive\n\n"
                else:
                    try:
                        chunk = pending.result()
                    except StopAsyncIteration:
                        return
                    pending = None
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)


def parse_kinds(values: list[str]) -> frozenset[str] | None:
    """`kind` given repeatedly or comma-separated; a trailing `.*` takes every kind of a family."""
    wanted: set[str] = set()
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            if name.endswith(".*"):
                family = {k for k in KINDS if k.startswith(name[:-1])}
                if not family:
                    raise ValueError(name)
                wanted |= family
            elif name in KINDS:
                wanted.add(name)
            else:
                raise ValueError(name)
    return frozenset(wanted) if wanted else None


def routes(services: Services) -> list[Route]:
    from dingbox.api.routes import ApiError  # the router module imports this one

    bus = services.runtime.events

    async def events(request: Request) -> EventStream:
        try:
            kinds = parse_kinds(request.query_params.getlist("kind"))
        except ValueError as exc:
            raise ApiError(
                400, "invalid_request", f"kind: unknown event kind {exc}; known: {', '.join(sorted(KINDS))}"
            ) from None
        corp_id = request.query_params.get("corp_id") or None

        def accept(event: Event) -> bool:
            return corp_id is None or event.corp_id == corp_id

        async def chunks() -> AsyncGenerator[bytes, None]:
            with bus.subscribe(kinds, accept) as sub:
                yield sse("ready", {"kinds": sorted(kinds or KINDS), "corp_id": corp_id})
                async for event in sub:
                    yield sse(event.kind, event.as_json())
                yield sse("overflow", {"message": "events were missed; re-read what you show and reconnect"})

        return EventStream(chunks())

    return [Route("/api/v1/events", events, methods=["GET"])]
