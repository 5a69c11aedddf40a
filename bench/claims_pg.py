"""Claims and dispatch on PostgreSQL with one and two dispatcher processes.

1. claims: a backlog of one-recipient tasks of several apps, worked off by 1 and then 2 claimer
   processes, each repeatedly claiming (`claim_sql.claim_ready`, as a dispatcher loop does) and then
   finishing what it claimed in a second transaction, so the apps' oldest tasks move on (after an
   empty claim it pauses 10 ms, as a loop would wait for a wake-up); no deciding, no HTTP. Claim
   transactions per second, and tasks claimed per second, with the dispatcher's claim size (1,000)
   and with claims of one task (each claim a transaction of its own: the claim's cost).
2. dispatch: one-recipient tasks (each its own content) inserted in one transaction, then
   `dingbox dispatch` processes started on them: 1 process × 1 loop, 2 × 1, 2 × 2. Rate: tasks
   decided between the first and the last finish over the time between them.
3. accept gate: the accept unit of work (`units.accept_tasks` of one task) one after another,
   with the app's advisory lock (`accept_gate`) and without it, in alternating rounds: what the gate
   costs an accept.
4. wake-up: a one-recipient send to a `serve` that does not dispatch, until `GET /api/v1/tasks/{id}?wait`
   answers it finished, one after another, decided by a `dingbox dispatch` process (woken by the
   relayed `task.accepted`); against the same with the serve process dispatching itself.

The tasks are analyzed after they are inserted, as autovacuum would (the planner's choices without
statistics are not the ones a running server gets). Each figure is printed with its ratio to the
one-process (or no-gate) reference measured in the same run. Makes and drops its own database
(prefix dbxc_bench_).

Usage: python bench/claims_pg.py [--postgres-url URL] [--tasks N] [--apps A] [--rounds R] [--parts 1234]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from dingbox.dispatch import units
from dingbox.domain.messages import canonical_json, content_hash
from dingbox.services.org import load_document_tx
from dingbox.store import claim_sql
from dingbox.store.postgres import PostgresStore
from dingbox.store.postgres import statements as pg_statements
from dingbox.store.task_sql import NewTask, PreparedTask
from pgdb import Databases

USERS = 1000
EMPTY_PAUSE = 0.01  # after an empty claim (a dispatcher loop waits for a wake-up or its poll)


def org(apps: int) -> dict[str, Any]:
    return {
        "corps": [
            {
                "corp_id": "bench",
                "name": "Bench",
                "users": [{"userid": f"u{i:04d}", "name": f"U {i}", "dept_ids": [1]} for i in range(USERS)],
                "apps": [
                    {
                        "agent_id": 7000 + n,
                        "name": f"A{n}",
                        "type": "internal",
                        "app_key": f"k{n}",
                        "app_secret": "s",
                    }
                    for n in range(apps)
                ],
            }
        ]
    }


def new_task(n: int, apps: int, tag: str) -> PreparedTask:
    msg = canonical_json({"msgtype": "text", "text": {"content": f"{tag} {n}"}})
    return PreparedTask.of(
        NewTask(
            source="work_notification",
            corp_id="bench",
            agent_id=7000 + n % apps,
            app_type="internal",
            request={},
            msgtype="text",
            msg=msg,
            content_hash=content_hash(msg),
            userids=[f"u{n % USERS:04d}"],
            dept_ids=[],
            to_all_user=False,
            warnings=[],
            not_before=0.0,
        )
    )


def add_tasks(store: PostgresStore, count: int, apps: int, tag: str) -> None:
    """`count` tasks, committed together."""
    items: list[units.AcceptItem] = [(new_task(n, apps, tag), time.time, None) for n in range(count)]
    store.write_sync(units.accept_tasks, items)


def pending(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM tasks WHERE status < 2").fetchone()
    return int(row[0]) if row else 0


@contextmanager
def database(base: str) -> Iterator[str]:
    dbs = Databases(base, "dbxc_bench_")
    try:
        yield dbs.create("claims")
    finally:
        dbs.drop_all()


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE tasks, deliveries, minute_counts, content_days")


def analyze(url: str) -> None:
    """Statistics for the planner, as autovacuum keeps them on a server that runs it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE tasks")


# -- 1. claims ------------------------------------------------------------------------------------


def finish_claimed(tx: Any, seqs: list[int]) -> None:
    tx.execute("UPDATE tasks SET status = 2, claimed_by = NULL WHERE seq = ANY(?)", (seqs,))


def claimer(url: str, limit: int, start_at: float) -> tuple[int, int, int, float, float]:
    """Claim and finish until nothing is pending: (tasks, claims, empty claims, first, last)."""
    store = PostgresStore(url, pool_size=2)
    owner = claim_sql.owner_name(f"bench-{os.getpid()}", 0)
    while time.time() < start_at:
        time.sleep(0.001)
    tasks = claims = empty = 0
    try:
        while True:
            claimed = store.write_sync(claim_sql.claim_ready, owner, time.time(), limit)
            claims += 1
            if not claimed:
                empty += 1
                if store.read_sync(lambda tx: tx.one("SELECT 1 FROM tasks WHERE status < 2 LIMIT 1")) is None:
                    return tasks, claims, empty, start_at, time.time()
                time.sleep(EMPTY_PAUSE)
                continue
            tasks += len(claimed)
            store.write_sync(finish_claimed, [t.seq for t in claimed])
    finally:
        store.close()


def claims_round(
    url: str, store: PostgresStore, processes: int, limit: int, count: int, apps: int
) -> dict[str, float]:
    reset(url)
    add_tasks(store, count, apps, f"claims {uuid.uuid4().hex[:6]}")
    analyze(url)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        start_at = time.time() + 2.0  # every process connected before the clock starts
        results = list(pool.map(claimer, [url] * processes, [limit] * processes, [start_at] * processes))
    elapsed = max(r[4] for r in results) - start_at
    return {
        "tasks/s": sum(r[0] for r in results) / elapsed,
        "claims/s": sum(r[1] for r in results) / elapsed,
        "empty": sum(r[2] for r in results) / sum(r[1] for r in results),
    }


# -- 2. dispatch ----------------------------------------------------------------------------------


def dispatch_processes(url: str, processes: int, loops: int) -> list[subprocess.Popen[str]]:
    cmd = [sys.executable, "-m", "dingbox", "dispatch", "--db", url, "--limits", "unlimited"]
    cmd += ["--dispatchers", str(loops), "--log-level", "warning"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("dispatchers="), line
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    return procs


def dispatch_round(
    url: str, store: PostgresStore, processes: int, loops: int, count: int, apps: int
) -> float:
    reset(url)
    add_tasks(store, count, apps, f"dispatch {uuid.uuid4().hex[:6]}")
    analyze(url)
    procs = dispatch_processes(url, processes, loops)
    try:
        deadline = time.monotonic() + 600
        while pending(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT COUNT(*), MIN(finished_at), MAX(finished_at) FROM tasks").fetchone()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    assert row is not None and row[0] == count, row
    return float((count - 1) / (row[2] - row[1]))


# -- 3. the accept gate ---------------------------------------------------------------------------


def accepts_per_second(store: PostgresStore, count: int, apps: int) -> float:
    items = [new_task(n, apps, f"accept {uuid.uuid4().hex[:6]}") for n in range(count)]
    t0 = time.perf_counter()
    for item in items:
        store.write_sync(units.accept_tasks, [(item, time.time, None)])
    return count / (time.perf_counter() - t0)


@contextmanager
def without_accept_gate() -> Iterator[None]:
    gate = pg_statements.STATEMENTS["accept_gate"]
    pg_statements.STATEMENTS["accept_gate"] = ""
    try:
        yield
    finally:
        pg_statements.STATEMENTS["accept_gate"] = gate


# -- 4. wake-up ----------------------------------------------------------------------------------


def wake_latency(url: str, *, serve_dispatchers: int, processes: int) -> float:
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from support import Client, ServerProcess, text

    args = ["--test-controls", "--dispatchers", str(serve_dispatchers), "--limits", "unlimited"]
    server = ServerProcess(url, args).start()
    procs = dispatch_processes(url, processes, 1)
    try:
        client = Client(server.url)
        token = client.token("k0", "s")
        times = []
        for n in range(50):
            msg = text(f"wake {uuid.uuid4().hex} {n}")
            body = client.send(token, agent_id=7000, msg=msg, userid_list="u0001")
            t0 = time.monotonic()
            assert client.task(body["task_id"], wait=5)["status"] == 2
            times.append(time.monotonic() - t0)
            time.sleep(0.02)
        return statistics.median(times)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        server.stop()


# -- the run --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("DINGBOX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--apps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="1234", help="which parts to run, e.g. 2 or 13")
    args = parser.parse_args()
    with database(args.postgres_url) as url:
        store = PostgresStore(url)
        try:
            store.write_sync(load_document_tx, org(args.apps))
            print(f"{args.tasks} one-recipient tasks of {args.apps} apps; medians of {args.rounds} rounds")
            print("load average at start: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))

            if "1" in args.parts:
                claims_part(url, store, args.tasks, args.apps, args.rounds)
            if "2" in args.parts:
                dispatch_part(url, store, args.tasks, args.apps, args.rounds)
            if "3" in args.parts:
                accept_gate_part(url, store, args.apps, args.rounds)
            if "4" in args.parts:
                wake_part(url)
            print("\nload average at the end: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
        finally:
            store.close()


def claims_part(url: str, store: PostgresStore, tasks: int, apps: int, rounds: int) -> None:
    """Rounds alternate between one and two processes, so that a change of the machine's load falls
    on both."""
    print("\n1. claims (claim, then finish in a second transaction)")
    for limit in (1000, 1):
        count = tasks if limit > 1 else min(tasks, 5000)
        figures: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for _ in range(rounds):
            for processes in (1, 2):
                figures[processes].append(claims_round(url, store, processes, limit, count, apps))
        med = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in figures.items()}
        for p in (1, 2):
            m = med[p]
            print(
                f"   limit {limit:>4}, {p} process(es): {m['claims/s']:8.0f} claims/s"
                f" {m['tasks/s']:8.0f} tasks/s  ({m['empty']:.0%} of claims empty)"
                + (f"  x{m['tasks/s'] / med[1]['tasks/s']:.2f}" if p == 2 else "")
            )


def dispatch_part(url: str, store: PostgresStore, tasks: int, apps: int, rounds: int) -> None:
    print("\n2. dispatch of one-recipient tasks by `dingbox dispatch` processes")
    shapes = ((1, 1), (2, 1), (2, 2))
    rates: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}
    for _ in range(rounds):
        for processes, loops in shapes:
            rates[(processes, loops)].append(dispatch_round(url, store, processes, loops, tasks, apps))
    reference = statistics.median(rates[shapes[0]])
    for (processes, loops), values in rates.items():
        rate = statistics.median(values)
        print(f"   {processes} process(es) x {loops} loop(s): {rate:8.0f} tasks/s  x{rate / reference:.2f}")


def accept_gate_part(url: str, store: PostgresStore, apps: int, rounds: int) -> None:
    print("\n3. accept unit of work, one after another")
    reset(url)
    bare_rounds, gated_rounds = [], []
    for _ in range(rounds):
        with without_accept_gate():
            bare_rounds.append(accepts_per_second(store, 1000, apps))
        gated_rounds.append(accepts_per_second(store, 1000, apps))
    bare, gated = statistics.median(bare_rounds), statistics.median(gated_rounds)
    print(f"   without the gate: {bare:6.0f}/s ({1e6 / bare:.0f} µs each)")
    print(f"   with the gate:    {gated:6.0f}/s ({1e6 / gated:.0f} µs each)  x{gated / bare:.2f}")


def wake_part(url: str) -> None:
    print("\n4. a send until it is seen finished, one after another (median of 50 each)")
    reset(url)
    own = wake_latency(url, serve_dispatchers=1, processes=0)
    other = wake_latency(url, serve_dispatchers=0, processes=1)
    print(f"   serve dispatching itself:     {own * 1000:6.1f} ms")
    print(f"   a dispatch process, woken:    {other * 1000:6.1f} ms  x{other / own:.2f}")


if __name__ == "__main__":
    main()
