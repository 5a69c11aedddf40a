"""Accept: asyncsend_v2 requests/s of one `serve` (default dispatcher) under wrk, against the bare
Starlette reference; 3 rounds of 10 s into one server with no drain between, then the drain."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable
from pathlib import Path

from dingbox.store.sqlite.backend import WAL_RESTART_FRAMES
from harness import Figure, ServerProcess, drain, send_url, wrk
from references import StarletteReference

WAL_BOUND_MB = 3 * WAL_RESTART_FRAMES * (4096 + 24) / 1e6  # plus what a checkpoint pass lets pile up


class WalWatch:
    """The largest size a SQLite store's WAL file reaches while it is watched (sampled every 50 ms)."""

    def __init__(self, db: Path) -> None:
        self.wal, self.largest = Path(f"{db}-wal"), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.largest = max(self.largest, self.wal.stat().st_size)
            except FileNotFoundError:
                pass

    def stop(self) -> float:
        """MB."""
        self._stop.set()
        self._thread.join()
        return self.largest / 1e6


def accept_figures(
    label: str,
    server: ServerProcess,
    reference: StarletteReference,
    seconds: int,
    rounds: int,
    database_cpu: tuple[Callable[[], None], Callable[[], float]] | None = None,
) -> list[Figure]:
    """The accept figures of a started server. `database_cpu` (start, stop: seconds) adds the CPU of
    the database server's processes per request (PostgreSQL) to the CPU line; a SQLite server adds
    the largest its WAL grew during the load."""
    assert server.proc is not None
    ref, ref_cpu = reference.rps(), reference.cpu_us()
    url = send_url(server)
    wrk(url, 1, server.proc.pid)  # warm up
    ours = []
    db_cpu: list[float] = []
    wal = None if database_cpu else WalWatch(server.db_path)
    for _ in range(rounds):  # back to back into one server: the backlog grows as users would see it
        if database_cpu:
            database_cpu[0]()
        rps, cpu = wrk(url, seconds, server.proc.pid)
        ours.append((rps, cpu))
        if database_cpu:
            db_cpu.append(database_cpu[1]() / (rps * seconds) * 1e6)
    wal_mb = wal.stop() if wal else None
    drained = drain(server)
    dbx = statistics.median(r for r, _ in ours)
    dbx_cpu = statistics.median(c for _, c in ours)
    rounds_text = " / ".join(f"{r:.0f}" for r, _ in ours)
    keep = ours[-1][0] / ours[0][0]
    cpu_detail = f"reference {ref_cpu:.0f} us (ratio {ref_cpu / dbx_cpu:.2f})"
    if db_cpu:
        cpu_detail += f"; PostgreSQL's processes {statistics.median(db_cpu):.0f} us more"
    figures = [
        Figure(
            f"{label}accept ratio vs bare Starlette",
            dbx / ref,
            "x",
            ">= 0.5",
            dbx / ref >= 0.5,
            f"dingbox {dbx:.0f} req/s ({rounds_text}), reference {ref:.0f} req/s ({reference.rounds_text()})",
        ),
        Figure(f"{label}accept round 3 / round 1", keep, "x", ">= 0.8", keep >= 0.8),
        Figure(f"{label}accept server CPU per request", dbx_cpu, "us", "-", True, cpu_detail),
        Figure(f"{label}drain after the load", drained, "s", "<= 30 s", drained <= 30),
    ]
    if wal_mb is not None:
        bound = f"<= {WAL_BOUND_MB:.0f} MB"
        figures.append(
            Figure(f"{label}largest WAL during the load", wal_mb, "MB", bound, wal_mb <= WAL_BOUND_MB)
        )
    return figures
