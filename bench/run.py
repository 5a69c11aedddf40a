"""dingbox benchmarks, run as users run the server, each figure printed beside its target.

The server runs with its defaults (one dispatcher, INFO logging, `synchronous` normal) plus
`--limits unlimited`; every figure is taken where a client would see it, into stores that already
hold data, and references are measured in the same run. Medians of the rounds unless said otherwise.

SQLite (a store file in a temporary directory):
1. accept: asyncsend_v2 requests/s (wrk, 16 connections, unique content per request) against a bare
   Starlette app on the same uvicorn, 3 rounds of 10 s into one server with no drain between; the
   server is pinned to core 0 and wrk to core 1 (taskset). Targets: ratio >= 0.5, round 3 >= 0.8 x round 1.
2. drain: after that load, time until nothing is pending. Target <= 30 s.
3. fan-out: to_all_user to 100,000 users in 100 departments, send until getsendprogress says status 2,
   3 rounds into one store, against a raw executemany of 100,000 rows into a minimal table (one unique
   and one secondary index), also 3 rounds into one file. Targets: median ratio <= 3, and
   round 3 <= 1.3 x round 1.
4. getsendresult of such a task (100,000 unread). Target: median <= 100 ms.
5. accept latency while a fan-out runs: 50 sends one after another during each round. Target: max <= 100 ms.
6. server RSS after the 300,000 deliveries of the fan-outs. Target <= 300 MB.
7. inbox API p95 for a user with 10,000 messages (first pages, unread filter, deep pages). Target <= 50 ms.

PostgreSQL (databases `<--postgres-prefix><pid>_<part>` created through `--postgres-url`, the
maintenance database, and dropped at the end):
8. pg accept: 1 and 2 against a `serve` on PostgreSQL (pinned to core 0; PostgreSQL's own processes
   run unpinned), against the same Starlette reference. Same targets; the CPU line adds the database
   processes' CPU per request.
9. pg fan-out: 3 to 5 on PostgreSQL, against one COPY of the same 100,000 rows (the columns and
   values dingbox writes, in its order) into the real `deliveries` table with its indexes, in a
   database migrated by dingbox, 3 rounds into one table. Target: median ratio <= 2.
10. pg scale-out: accept requests/s of two `serve --dispatchers 0` processes against one, beside one
   `dingbox dispatch`, all on one database (scaleout.py says how they are pinned). Target > 1: on
   2 cores two processes cannot double; above 1 they add capacity rather than contend.

Usage: python bench/run.py [--users N] [--seconds S] [--rounds R] [--only PART]... [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from accept import accept_figures
from fanout import Reference, fanout_figures, org_file
from harness import EXTRA, Figure, start_dingbox
from pgdb import BackendCPU, Databases
from references import StarletteReference, copy_postgres, executemany_sqlite, migrate
from scaleout import scaleout_figures

SQLITE_PARTS = ("accept", "fanout")
PG_PARTS = ("pg-accept", "pg-fanout", "pg-scaleout")
GROUPS = {"sqlite": SQLITE_PARTS, "pg": PG_PARTS}


def show(figures: list[Figure]) -> list[Figure]:
    print("\n".join(map(str, figures)), flush=True)
    return figures


def sqlite_accept(work: Path, reference: StarletteReference, args: argparse.Namespace) -> list[Figure]:
    server = start_dingbox(work / "accept.db", [])
    try:
        return accept_figures("", server, reference, args.seconds, args.rounds)
    finally:
        server.stop()


def sqlite_fanout(work: Path, args: argparse.Namespace) -> list[Figure]:
    org = org_file(work / "org.json", args.users)
    seconds = [executemany_sqlite(work / "reference.db", args.users, n + 1) for n in range(args.rounds)]
    server = start_dingbox(work / "fanout.db", ["--org", str(org)])
    try:
        return fanout_figures("", server, args.users, args.rounds, Reference("executemany", seconds, 3))
    finally:
        server.stop()


def pg_accept(dbs: Databases, reference: StarletteReference, args: argparse.Namespace) -> list[Figure]:
    url = dbs.create("accept")
    server = start_dingbox(url, [])
    database = BackendCPU(dbs.maintenance_url, url)
    try:
        return accept_figures(
            "pg ", server, reference, args.seconds, args.rounds, (database.start, database.stop)
        )
    finally:
        server.stop()


def pg_fanout(work: Path, dbs: Databases, args: argparse.Namespace) -> list[Figure]:
    reference_url = dbs.create("copy")
    migrate(reference_url)
    seconds = [copy_postgres(reference_url, args.users, n + 1) for n in range(args.rounds)]
    org = org_file(work / "org.json", args.users)
    server = start_dingbox(dbs.create("fanout"), ["--org", str(org)])
    try:
        return fanout_figures(
            "pg ", server, args.users, args.rounds, Reference("COPY", seconds, 2), inbox=False
        )
    finally:
        server.stop()


def main() -> None:
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is needed (Debian: apt-get install wrk util-linux)")
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("bench: needs two cores (server and load generator are pinned apart)")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only",
        action="append",
        choices=[*SQLITE_PARTS, *PG_PARTS, *GROUPS],
        help="run only this part (or group: sqlite, pg); may be given more than once",
    )
    parser.add_argument("--serve-arg", action="append", default=[], help="an extra `dingbox serve` argument")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a maintenance database of the PostgreSQL server to measure on; the bench creates and"
        " drops its own databases there",
    )
    parser.add_argument("--postgres-prefix", default="dingbox_bench_", help="names of the bench's databases")
    args = parser.parse_args()
    EXTRA.extend(args.serve_arg)
    chosen = {part for name in args.only or GROUPS for part in GROUPS.get(name, (name,))}
    dbs = Databases(args.postgres_url, args.postgres_prefix)
    if chosen & set(PG_PARTS) and (why := dbs.check()) is not None:
        sys.exit(f"bench: PostgreSQL at {args.postgres_url} cannot be used ({why}); --only sqlite skips it")
    reference = StarletteReference(args.seconds, args.rounds)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            if "accept" in chosen:
                figures += show(sqlite_accept(work, reference, args))
            if "fanout" in chosen:
                figures += show(sqlite_fanout(work, args))
            if "pg-accept" in chosen:
                figures += show(pg_accept(dbs, reference, args))
            if "pg-fanout" in chosen:
                figures += show(pg_fanout(work, dbs, args))
            if "pg-scaleout" in chosen:
                scaled, note = scaleout_figures(dbs.create("scaleout"), args.seconds, args.rounds)
                figures += show(scaled)
                print(note, flush=True)
        finally:
            dbs.drop_all()
    missed = [f.name for f in figures if not f.met]
    print(
        f"\n{len(figures) - len(missed)} of {len(figures)} targets met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )


if __name__ == "__main__":
    main()
