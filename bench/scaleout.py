"""Scale-out: accept throughput of two `serve` processes on one PostgreSQL database against one.

Both set-ups are the same but for the second server: `serve --dispatchers 0` processes and one
`dingbox dispatch`, all on one database. Each round measures one server (wrk, 16 connections), then
starts the second and measures both together (one wrk with 8 connections against each, at the same
time), then stops the second again; the backlog is drained before each measurement, so neither
set-up pays for the other's dispatch.

Pinning on this 2-core machine: server A keeps core 0 to itself, as in the accept figure; server B,
the dispatcher and the load generators share core 1; PostgreSQL's processes are not ours to pin and
run where the kernel puts them. A second server can only add what core 1 has left over, so the ratio
cannot reach 2 here: above 1 it shows that servers add capacity rather than contend.
"""

from __future__ import annotations

import statistics

from harness import (
    CORES,
    DEFAULTS,
    EXTRA,
    LOAD_CORE,
    Figure,
    ServerProcess,
    Wrk,
    drain,
    pin,
    send_url,
    start_dingbox,
)
from support import DispatchProcess  # noqa: E402  (harness puts tests/ on the path)

A_CORE, B_CORE, DISPATCH_CORE = "0", "1", LOAD_CORE
PLACEMENT = (
    f"{CORES} cores: serve A on core {A_CORE}; serve B, `dingbox dispatch` and wrk on core {B_CORE};"
    " PostgreSQL unpinned"
)


def _server(url: str, core: str) -> ServerProcess:
    return start_dingbox(url, ["--dispatchers", "0"], core)


def scaleout_figures(url: str, seconds: int, rounds: int) -> tuple[list[Figure], str]:
    """(figures, a note on the placement) of two servers against one on the database at `url`."""
    one: list[float] = []
    two: list[tuple[float, float]] = []
    a = _server(url, A_CORE)  # first and alone: it loads the demo org into the empty database
    dispatcher = DispatchProcess(url, ["--limits", "unlimited"], log_level="info").start(timeout=60)
    try:
        pin(dispatcher.pid, DISPATCH_CORE)
        a_url = send_url(a)
        Wrk(a_url, 1).result()  # warm up
        for _ in range(rounds):
            drain(a)
            one.append(Wrk(a_url, seconds).result()[0])
            b = _server(url, B_CORE)
            try:
                b_url = send_url(b)
                Wrk(b_url, 1).result()
                drain(a)
                both = [Wrk(a_url, seconds, connections=8), Wrk(b_url, seconds, connections=8)]
                rates = [w.result()[0] for w in both]
                two.append((rates[0], rates[1]))
            finally:
                b.stop()
        drain(a)
    finally:
        dispatcher.stop()
        a.stop()
    single = statistics.median(one)
    double = statistics.median(first + second for first, second in two)
    ratio = double / single
    one_text = " / ".join(f"{r:.0f}" for r in one)
    two_text = " / ".join(f"{first:.0f}+{second:.0f}" for first, second in two)
    figures = [
        Figure(
            "pg accept, two serve / one serve",
            ratio,
            "x",
            "> 1 (2 cores)",
            ratio > 1,
            f"one {single:.0f} req/s ({one_text}), two {double:.0f} req/s ({two_text})",
        )
    ]
    note = (
        f"  ({PLACEMENT}; servers `serve --dispatchers 0` {' '.join(DEFAULTS + EXTRA)} plus one"
        " `dingbox dispatch`: two processes cannot double on 2 cores)"
    )
    return figures, note
