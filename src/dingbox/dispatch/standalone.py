"""`dingbox dispatch`: dispatcher loops without an HTTP server, beside `serve` processes on a shared store.

The process holds the same runtime a server does (virtual clock, directory, event bus relayed to the
other processes), runs its loops until SIGINT or SIGTERM, then lets the write in flight commit and
leaves what it had claimed to the other dispatchers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from dingbox.dispatch.worker import Dispatcher
from dingbox.runtime import Runtime
from dingbox.settings import Settings
from dingbox.store import Store

log = logging.getLogger("dingbox.dispatch")


async def run(settings: Settings, store: Store, started: Callable[[], None]) -> int:
    """Dispatch until told to stop; gives the number of dispatcher loops that died (0 when healthy)."""
    runtime = Runtime(settings, store)
    runtime.refresh_sync()
    dispatcher = Dispatcher(runtime, settings.dispatchers)
    runtime.dead_dispatch_loops = lambda: dispatcher.dead_loops
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime.start()
    dispatcher.start()
    started()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                if dispatcher.dead_loops == settings.dispatchers:
                    log.error("every dispatcher loop died; stopping")
                    break
    finally:
        dead = dispatcher.dead_loops
        await dispatcher.stop()
        await runtime.stop()
    return dead
