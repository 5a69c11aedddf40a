"""Connection limits uvicorn lacks: a deadline for a request's headers, one for its body, and a cap on
open connections, so slow or idle clients cannot hold descriptors for as long as they like.

uvicorn only times out a keep-alive connection between requests (and any byte cancels that). This
protocol adds one deadline per phase: from connection (or the previous response) to the end of the
headers, then from there to the end of the body. A client that misses one is answered 408 and the
connection is closed; a handler still waiting for that body sees the client gone and drops the work.

A deadline is a number on the connection, checked by one sweep of all connections every quarter
second: a timer armed and cancelled twice per request cost about 5 % of an accept.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dingbox.settings import Settings

log = logging.getLogger("dingbox.transport")


def _plain(status: str, text: str) -> bytes:
    body = text.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
    return (head + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


_TIMED_OUT = _plain("408 Request Timeout", "request not received in time")
_FULL = _plain("503 Service Unavailable", "too many open connections")
_FULL_WARNING_EVERY = 60.0  # seconds: a flood of refused connections logs one warning a minute


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; `configured` sets them from Settings."""

    header_timeout = 10.0
    body_timeout = 30.0
    max_connections = 1000
    SWEEP_SECONDS = 0.25
    _last_full_warning = -_FULL_WARNING_EVERY
    _swept_loops: set[asyncio.AbstractEventLoop] = set()
    _due = math.inf  # loop time by which the current phase must end
    _phase = ""
    _seconds = 0.0

    @classmethod
    def configured(cls, settings: Settings) -> type[DeadlineProtocol]:
        class Configured(cls):  # type: ignore[valid-type,misc]
            header_timeout = settings.header_timeout
            body_timeout = settings.body_timeout
            max_connections = settings.max_connections

        return Configured

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.loop not in DeadlineProtocol._swept_loops:
            DeadlineProtocol._swept_loops.add(self.loop)
            self.loop.call_later(self.SWEEP_SECONDS, _sweep, self.loop, self.connections)
        if len(self.connections) > self.max_connections:
            self._refuse_when_full()
            return
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        # a pipelined request already read, or a body still arriving, keeps the deadline it has
        waiting_for_next = not self.pipeline and self._due == math.inf
        super().on_response_complete()
        if waiting_for_next and not self.transport.is_closing():
            self._arm(self.header_timeout, "headers")

    def _refuse_when_full(self) -> None:
        now = time.monotonic()
        cls = type(self)
        if now - cls._last_full_warning >= _FULL_WARNING_EVERY:
            cls._last_full_warning = now
            log.warning("%d connections open (--max-connections): refusing new ones", self.max_connections)
        self.transport.write(_FULL)
        self.transport.close()

    def _arm(self, seconds: float, phase: str) -> None:
        self._due, self._phase, self._seconds = self.loop.time() + seconds, phase, seconds

    def _disarm(self) -> None:
        self._due = math.inf

    def expire_if_due(self, now: float) -> None:
        if now < self._due:
            return
        self._due = math.inf
        if self.transport.is_closing():
            return
        log.debug("%s: request %s not received within %gs; closing", self.client, self._phase, self._seconds)
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_TIMED_OUT)
        self.transport.close()


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Close the connections whose phase ran out, then look again in a quarter second."""
    now = loop.time()
    for protocol in list(connections):
        if isinstance(protocol, DeadlineProtocol):
            protocol.expire_if_due(now)
    if not loop.is_closed():
        loop.call_later(DeadlineProtocol.SWEEP_SECONDS, _sweep, loop, connections)
