"""The references each figure is divided by, measured in the same run as the figure.

- accept: a bare Starlette app on the same uvicorn (`reference_app.py`), measured once per run with
  the same wrk load and shared by every accept figure (SQLite's and PostgreSQL's).
- SQLite fan-out: one executemany of the fan-out's rows into a minimal table (one unique and one
  secondary index), round after round into one file.
- PostgreSQL fan-out: one COPY of the rows dingbox writes (the same columns and values, in the
  fan-out's order) into the real `deliveries` table, with its indexes, of a database migrated by
  dingbox, round after round into one table.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests

from dingbox.store.migrate import migrate_postgres
from harness import SEND, SERVER_CORE, pin, wrk
from support import free_port

DEPARTMENTS = 100


def _fanout_order(users: int) -> list[int]:
    """User numbers in the order a fan-out decides them: department id, then userid."""
    return sorted(range(users), key=lambda i: (i % DEPARTMENTS, i))


class StarletteReference:
    """Requests/s and CPU per request of the bare Starlette app: measured on first use, then shared."""

    def __init__(self, seconds: int, rounds: int) -> None:
        self.seconds, self.rounds = seconds, rounds
        self._runs: list[tuple[float, float]] | None = None

    def runs(self) -> list[tuple[float, float]]:
        if self._runs is None:
            proc, url = _start_reference()
            try:
                wrk(url + SEND, 1, proc.pid)  # warm up
                self._runs = [wrk(url + SEND, self.seconds, proc.pid) for _ in range(self.rounds)]
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait()
        return self._runs

    def rps(self) -> float:
        return statistics.median(r for r, _ in self.runs())

    def cpu_us(self) -> float:
        return statistics.median(c for _, c in self.runs())

    def rounds_text(self) -> str:
        return " / ".join(f"{r:.0f}" for r, _ in self.runs())


def _start_reference() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "reference_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=Path(__file__).parent,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.post(url + SEND, data=b"{}", timeout=1)
            pin(proc.pid, SERVER_CORE)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("reference app did not start")


def executemany_sqlite(db: Path, users: int, round_no: int) -> float:
    """One executemany of `users` rows, in the fan-out's order, into a minimal deliveries table with
    one unique and one secondary index, in the same file round after round."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, task INTEGER NOT NULL,"
        " corp TEXT NOT NULL, userid TEXT NOT NULL, message INTEGER NOT NULL, state INTEGER NOT NULL,"
        " time REAL NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS deliveries_task_user ON deliveries (task, userid)")
    conn.execute("CREATE INDEX IF NOT EXISTS deliveries_inbox ON deliveries (corp, userid, id)")
    base = round_no << 24
    rows = [
        (base | pos, round_no, "bench", f"u{i:06d}", base | pos, 0, 1.0)
        for pos, i in enumerate(_fanout_order(users))
    ]
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO deliveries (id, task, corp, userid, message, state, time) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


# The columns dingbox writes for a delivery (store/delivery_sql.py), in its order.
DELIVERY_COLUMNS = (
    "id, task_seq, pos, corp_id, userid, agent_id, outcome, reason, code, day, content_hash, created_at,"
    " recalled"
)


def migrate(url: str) -> None:
    """Give a fresh database dingbox's schema, as `dingbox serve` would on its first start."""
    with psycopg.connect(url, autocommit=True) as conn:
        migrate_postgres(conn)


def copy_postgres(url: str, users: int, round_no: int) -> float:
    """One COPY of `users` delivered rows, as a fan-out writes them (new content, so a new dedup key
    each), in the fan-out's order, into the `deliveries` table of a database `migrate` prepared; one
    transaction, timed from BEGIN to COMMIT."""
    base = round_no << 24
    content = hashlib.sha256(f"fan {round_no}".encode()).digest()
    day = int(time.time() // 86400)
    now = time.time()
    rows = [
        (base | pos, round_no, pos, "bench", f"u{i:06d}", 9001, 0, None, None, day, content, now, 0)
        for pos, i in enumerate(_fanout_order(users))
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        statement = f"COPY deliveries ({DELIVERY_COLUMNS}) FROM STDIN"
        with conn.transaction(), conn.cursor().copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - start
    return elapsed
