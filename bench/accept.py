"""Accept: asyncsend_v2 requests/s of one `serve` (default dispatcher) under wrk, against the bare
Starlette reference; 3 rounds of 10 s into one server with no drain between, then the drain."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from harness import Figure, ServerProcess, drain, send_url, wrk
from references import StarletteReference


def accept_figures(
    label: str,
    server: ServerProcess,
    reference: StarletteReference,
    seconds: int,
    rounds: int,
    database_cpu: tuple[Callable[[], None], Callable[[], float]] | None = None,
) -> list[Figure]:
    """The accept figures of a started server. `database_cpu` (start, stop: seconds) adds the CPU of
    the database server's processes per request (PostgreSQL) to the CPU line."""
    assert server.proc is not None
    ref, ref_cpu = reference.rps(), reference.cpu_us()
    url = send_url(server)
    wrk(url, 1, server.proc.pid)  # warm up
    ours = []
    db_cpu: list[float] = []
    for _ in range(rounds):  # back to back into one server: the backlog grows as users would see it
        if database_cpu:
            database_cpu[0]()
        rps, cpu = wrk(url, seconds, server.proc.pid)
        ours.append((rps, cpu))
        if database_cpu:
            db_cpu.append(database_cpu[1]() / (rps * seconds) * 1e6)
    drained = drain(server)
    dbx = statistics.median(r for r, _ in ours)
    dbx_cpu = statistics.median(c for _, c in ours)
    rounds_text = " / ".join(f"{r:.0f}" for r, _ in ours)
    keep = ours[-1][0] / ours[0][0]
    cpu_detail = f"reference {ref_cpu:.0f} us (ratio {ref_cpu / dbx_cpu:.2f})"
    if db_cpu:
        cpu_detail += f"; PostgreSQL's processes {statistics.median(db_cpu):.0f} us more"
    return [
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
