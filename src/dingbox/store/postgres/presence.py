"""A process's presence on the PostgreSQL server: one session held open under the process's name.

Dispatchers name their claims after it (`claim_sql`), and any process sweeping for dead claims reads
the names of the live sessions from `pg_stat_activity`. When the process dies, however it dies, its
operating system closes the socket and the server ends the session at once; keepalives, asked of the
server for this session, bound the wait when the whole host goes away instead. A process whose
session is lost (a server restart, the network) claims nothing until it is back, under the same name.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

log = logging.getLogger("dingbox.store")

CHECK_SECONDS = 1.0  # between two checks that the session still answers
# The server probes a silent client after 5 s, every 2 s, and gives up after 3 missed probes; the
# client probes the server the same way, so a check of a vanished server fails too.
_KEEPALIVES: dict[str, Any] = {
    "options": "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


class Presence:
    def __init__(self, url: str, name: str) -> None:
        self.name = name  # an application_name: at most 63 bytes
        self._url = url
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dingbox-pg-presence", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the session is open, as of its last check (at most CHECK_SECONDS ago)."""
        return self._connected.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=10,
                    application_name=self.name,
                    **_KEEPALIVES,
                ) as conn:
                    self._hold(conn)
            except psycopg.Error as exc:
                self._connected.clear()
                if self._stop.is_set():
                    return
                log.warning("presence session %s lost, claiming nothing until it is back: %s", self.name, exc)
                self._stop.wait(1.0)

    def _hold(self, conn: psycopg.Connection[Any]) -> None:
        self._connected.set()
        while not self._stop.wait(CHECK_SECONDS):
            conn.execute("SELECT 1")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._connected.clear()
