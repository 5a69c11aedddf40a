"""Dispatchers in several processes on one PostgreSQL store (DESIGN §2, §3): claims with
`FOR UPDATE SKIP LOCKED`, takeover of a killed dispatcher's task at its cursor, a graceful stop that
hands its task over at once, and one app's tasks decided in acceptance order across processes.

Runs when DINGBOX_TEST_POSTGRES_URL names a PostgreSQL database the tests may create databases
beside (e.g. postgresql://postgres@127.0.0.1:5432/test); in CI it must be set.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from support import Client, ServerProcess, text

BASE_URL = os.environ.get("DINGBOX_TEST_POSTGRES_URL", "")
if not BASE_URL:
    if os.environ.get("CI") == "true":
        pytest.fail("DINGBOX_TEST_POSTGRES_URL is not set: CI runs the PostgreSQL tests", pytrace=False)
    pytest.skip("DINGBOX_TEST_POSTGRES_URL is not set", allow_module_level=True)

import psycopg  # noqa: E402  (only needed, and only installed for sure, when PostgreSQL is tested)

FAN_OUT = 50_000
DEPARTMENTS = 50  # FAN_OUT users, FAN_OUT / DEPARTMENTS in each
APPS = 4  # of the corp the ordering test sends from
UNLIMITED = ("--limits", "unlimited")
DISPATCHED = re.compile(r"task (\d+) of app \d+ dispatched: ")


def database_url(name: str) -> str:
    parts = urlsplit(BASE_URL)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh database of this module's own, dropped at the end."""
    name = f"dbxc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(BASE_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[ServerProcess]:
    """A server that only accepts (its dispatchers are the processes each test starts)."""
    proc = ServerProcess(pg_url, ["--test-controls", "--dispatchers", "0", *UNLIMITED]).start()
    c = Client(proc.url)
    assert c.load_org(big_org()).status_code == 200
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> Client:
    c = Client(server.url)
    c.reset()
    return c


class DispatchProcess:
    """A `dingbox dispatch` subprocess; its output lines are kept in `output`."""

    def __init__(self, db: str, args: Sequence[str] = ()) -> None:
        cmd = [sys.executable, "-m", "dingbox", "dispatch", "--db", db, "--log-level", "info", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.output: list[str] = []
        started = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if line.startswith("dispatchers="):
                    started.set()
            started.set()

        threading.Thread(target=pump, daemon=True).start()
        if not started.wait(30) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("dingbox dispatch did not start:\n" + "".join(self.output))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self, words: str) -> list[str]:
        return [line for line in self.output if words in line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def dispatchers(pg_url: str) -> Iterator[list[DispatchProcess]]:
    """Start dispatch processes with `start(*args)`; each is stopped at the end of the test."""
    started: list[DispatchProcess] = []
    yield started
    for proc in started:
        proc.stop()


def start(started: list[DispatchProcess], db: str, *args: str) -> DispatchProcess:
    proc = DispatchProcess(db, [*UNLIMITED, *args])
    started.append(proc)
    return proc


def big_org() -> dict[str, Any]:
    """Corp `big`: FAN_OUT users in DEPARTMENTS departments under the root, and one app; corp `small`:
    four apps and 200 users, for the ordering test."""
    per_dept = FAN_OUT // DEPARTMENTS
    app = {"type": "internal", "name": "App"}
    return {
        "corps": [
            {
                "corp_id": "big",
                "name": "Big",
                "departments": [
                    {"dept_id": 100 + d, "name": f"Dept {d}", "parent_id": 1} for d in range(DEPARTMENTS)
                ],
                "users": [
                    {"userid": f"u{i:05d}", "name": f"User {i}", "dept_ids": [100 + i // per_dept]}
                    for i in range(FAN_OUT)
                ],
                "apps": [{**app, "agent_id": 5001, "app_key": "big-key", "app_secret": "big-secret"}],
            },
            {
                "corp_id": "small",
                "name": "Small",
                "users": [{"userid": f"s{i:03d}", "name": f"S {i}", "dept_ids": [1]} for i in range(200)],
                "apps": [
                    {**app, "agent_id": 6000 + n, "app_key": f"small-{n}", "app_secret": f"small-{n}-secret"}
                    for n in range(APPS)
                ],
            },
        ]
    }


def task_state(db: str, task_id: int) -> tuple[str | None, int, int]:
    """(claimed_by, cursor, delivery rows) of a task, as committed."""
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT claimed_by, cursor, (SELECT COUNT(*) FROM deliveries WHERE task_seq = seq)"
            " FROM tasks WHERE task_id = %s",
            (task_id,),
        ).fetchone()
    assert row is not None
    return row[0], int(row[1]), int(row[2])


def claimed_mid_fan_out(db: str, task_id: int, timeout: float = 60.0) -> tuple[str, int]:
    """Wait until the task has committed part of its fan-out; (its owner, its cursor)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner, cursor, _ = task_state(db, task_id)
        if owner is not None and 0 < cursor < FAN_OUT:
            return owner, cursor
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} showed no progress: {task_state(db, task_id)}")


def owner_process(owner: str, procs: Sequence[DispatchProcess]) -> DispatchProcess:
    """The dispatch process a claim names: `dingbox-<pid>-<random>/<loop>`."""
    pid = int(owner.split("-")[1])
    return next(p for p in procs if p.pid == pid)


def fan_out_facts(db: str, task_id: int) -> dict[str, int]:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT userid), COUNT(DISTINCT pos),"
            " COUNT(*) FILTER (WHERE outcome = 0), MAX(t.delivered)"
            " FROM deliveries d JOIN tasks t ON t.seq = d.task_seq WHERE t.task_id = %s",
            (task_id,),
        ).fetchone()
        counted = conn.execute("SELECT SUM(n) FROM minute_counts WHERE agent_id = 5001").fetchone()
        app_rows = conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE agent_id = 5001 AND outcome = 0"
        ).fetchone()
    assert row is not None and counted is not None and app_rows is not None
    keys = ("rows", "users", "positions", "delivered", "task_delivered")
    return {
        **dict(zip(keys, map(int, row), strict=True)),
        "minute_count": int(counted[0]),
        "app_rows": int(app_rows[0]),
    }


def whole_fan_out() -> dict[str, int]:
    return {
        "rows": FAN_OUT,
        "users": FAN_OUT,
        "positions": FAN_OUT,
        "delivered": FAN_OUT,
        "task_delivered": FAN_OUT,
        "minute_count": FAN_OUT,
        "app_rows": FAN_OUT,
    }


def test_killed_dispatcher_leaves_its_fan_out_to_the_other(
    client: Client, pg_url: str, dispatchers: list[DispatchProcess]
) -> None:
    """SIGKILL of the dispatcher writing a 50,000-recipient fan-out: the other takes the task over at
    its cursor and every user has exactly one message; counters equal rows."""
    # Small writes: the fan-out commits in 50 pieces, so the kill surely lands between two of them.
    procs = [start(dispatchers, pg_url, "--batch-size", "1000") for _ in range(2)]
    token = client.token("big-key", "big-secret")
    task_id = client.send(token, agent_id=5001, msg=text("everyone"), to_all_user=True)["task_id"]
    owner, _ = claimed_mid_fan_out(pg_url, task_id)
    victim = owner_process(owner, procs)
    victim.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    _, cursor_at_kill, rows_at_kill = task_state(pg_url, task_id)
    survivor = next(p for p in procs if p is not victim)
    resumed = claimed_by_other(pg_url, task_id, owner)
    print(f"\nkilled with {rows_at_kill} of {FAN_OUT} written; taken over after {resumed - killed_at:.2f} s")
    task = client.task(task_id, wait=120, limit=1)

    assert 0 < rows_at_kill == cursor_at_kill < FAN_OUT
    assert (task["status"], task["counts"]) == (2, {"delivered": FAN_OUT})
    assert fan_out_facts(pg_url, task_id) == whole_fan_out()
    assert survivor.lines(f"dispatcher {owner} is gone")
    assert client.inbox("u00000", "big")[0]["task_id"] == task_id


def claimed_by_other(db: str, task_id: int, owner: str, timeout: float = 60.0) -> float:
    """When (monotonic) another dispatcher had the task claimed, or had finished it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now_owner, cursor, _ = task_state(db, task_id)
        if (now_owner is not None and now_owner != owner) or cursor == FAN_OUT:
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} stayed with {owner}")


def test_stopped_dispatcher_hands_its_fan_out_over_at_once(
    client: Client, pg_url: str, dispatchers: list[DispatchProcess]
) -> None:
    """SIGTERM of the dispatcher writing a fan-out: it releases the task as it stops (no sweep needed),
    the other goes on at the cursor, and every user has exactly one message."""
    procs = [start(dispatchers, pg_url, "--batch-size", "1000") for _ in range(2)]
    token = client.token("big-key", "big-secret")
    task_id = client.send(token, agent_id=5001, msg=text("everyone, again"), to_all_user=True)["task_id"]
    owner, _ = claimed_mid_fan_out(pg_url, task_id)
    victim = owner_process(owner, procs)
    stopped_at = time.monotonic()
    code = victim.stop(signal.SIGTERM)
    exited_at = time.monotonic()
    survivor = next(p for p in procs if p is not victim)
    resumed = claimed_by_other(pg_url, task_id, owner)
    print(
        f"\nstopped in {exited_at - stopped_at:.2f} s; taken over {resumed - exited_at:.2f} s after the exit"
    )
    task = client.task(task_id, wait=120, limit=1)

    assert code == 0
    assert (task["status"], task["counts"]) == (2, {"delivered": FAN_OUT})
    assert fan_out_facts(pg_url, task_id) == whole_fan_out()
    assert not survivor.lines("is gone")  # released by the stopping dispatcher, not swept


def test_dispatchers_in_two_processes_keep_each_apps_order(
    client: Client, pg_url: str, dispatchers: list[DispatchProcess]
) -> None:
    """2 processes × 2 loops on 2,000 small tasks of four apps accepted in a burst (two senders per
    app at once): every task is decided once, by one dispatcher; each content sent twice in a row by
    one sender is delivered by the first task and forbidden (143106) in the second, never the reverse;
    nobody receives a content twice."""
    procs = [start(dispatchers, pg_url, "--dispatchers", "2") for _ in range(2)]
    lanes = [(n, lane) for n in range(APPS) for lane in range(2)]
    pairs_per_lane = 2000 // len(lanes) // 2

    def send_lane(app_lane: tuple[int, int]) -> list[tuple[int, int, str]]:
        n, lane = app_lane
        c = Client(client.base)
        token = c.token(f"small-{n}", f"small-{n}-secret")
        sent = []
        for i in range(pairs_per_lane):
            users = ",".join(f"s{(i * 7 + k + lane * 50) % 200:03d}" for k in range(1 + i % 3))
            for _ in range(2):
                body = c.send(
                    token, agent_id=6000 + n, msg=text(f"app {n} lane {lane} #{i}"), userid_list=users
                )
                assert body["errcode"] == 0, body
                sent.append((body["task_id"], len(users.split(",")), users))
        return sent

    with ThreadPoolExecutor(len(lanes)) as pool:
        sent = [task for lane in pool.map(send_lane, lanes) for task in lane]
    client.drain(timeout=120)
    counts = {task_id: client.task(task_id, wait=0, limit=1)["counts"] for task_id, _, _ in sent}
    seconds = [client.task(task_id, wait=0)["recipients"] for task_id, _, _ in sent[1::2]]
    decided = [m[1] for proc in procs for line in proc.output if (m := DISPATCHED.search(line))]
    with psycopg.connect(pg_url) as conn:
        repeats = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE outcome = 0 AND agent_id >= 6000"
            " GROUP BY agent_id, userid, content_hash HAVING COUNT(*) > 1) AS twice"
        ).fetchone()
        rows = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT (task_seq, pos)) FROM deliveries WHERE agent_id >= 6000"
        ).fetchone()
    print(f"\ntasks decided per dispatch process: {[len(proc.lines(' dispatched: ')) for proc in procs]}")

    assert len(sent) == 2000
    for (first, size, _), (second, _, _) in zip(sent[::2], sent[1::2], strict=True):
        assert (counts[first], counts[second]) == ({"delivered": size}, {"forbidden": size})
    assert {(r["outcome"], r["reason"], r["code"]) for recipients in seconds for r in recipients} == {
        ("forbidden", "duplicate_content", "143106")
    }
    assert sorted(decided) == sorted(str(task_id) for task_id, _, _ in sent)  # each once, by one process
    assert repeats == (0,)
    assert rows is not None and rows[0] == rows[1] == sum(size for _, size, _ in sent)
