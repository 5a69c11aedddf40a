"""Dispatchers in several processes on one PostgreSQL store (DESIGN §2, §3): claims with
`FOR UPDATE SKIP LOCKED`, takeover of a killed dispatcher's task at its cursor, a graceful stop that
hands its task over at once, and one app's tasks decided in acceptance order across processes.

Runs when DINGBOX_TEST_POSTGRES_URL names a PostgreSQL database the tests may create databases
beside (e.g. postgresql://postgres@127.0.0.1:5432/test); in CI it must be set.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from support import Client, DispatchProcess, ServerProcess, text

FAN_OUT = 50_000
DEPARTMENTS = 50  # FAN_OUT users, FAN_OUT / DEPARTMENTS in each
APPS = 4  # of the corp the ordering test sends from
SMALL_USERS = 2000  # of that corp
UNLIMITED = ("--limits", "unlimited")
DISPATCHED = re.compile(r"task (\d+) of app \d+ dispatched: ")


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[ServerProcess]:
    """A server that only accepts (its dispatchers are the processes each test starts)."""
    proc = ServerProcess(pg_url, ["--test-controls", "--dispatchers", "0", *UNLIMITED]).start()
    try:
        assert Client(proc.url).load_org(big_org()).status_code == 200
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> Client:
    c = Client(server.url)
    c.reset()
    return c


Start = Callable[..., list[DispatchProcess]]


@pytest.fixture
def start(pg_url: str) -> Iterator[Start]:
    """`start(*args, count=2)`: dispatch processes on the module's database, launched together and
    then waited for; each is stopped at the end of the test."""
    started: list[DispatchProcess] = []

    def launch(*args: str, count: int = 2) -> list[DispatchProcess]:
        procs = [DispatchProcess(pg_url, [*UNLIMITED, *args], log_level="info") for _ in range(count)]
        started.extend(proc.launch() for proc in procs)
        return [proc.started() for proc in procs]

    yield launch
    for proc in started:
        proc.stop()


def big_org() -> dict[str, Any]:
    """Corp `big`: FAN_OUT users in DEPARTMENTS departments under the root, and one app; corp `small`:
    APPS apps and SMALL_USERS users, for the ordering test."""
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
                "users": [
                    {"userid": f"s{i:04d}", "name": f"S {i}", "dept_ids": [1]} for i in range(SMALL_USERS)
                ],
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
    """Wait until the task has committed part of its fan-out; (its owner, its cursor).

    Then gives the planner statistics of the deliveries: a resumed fan-out reads each recipient's
    same-content owner, and without statistics (a fresh database, autovacuum off or not yet run)
    PostgreSQL reads every delivery of the app for each chunk of recipients."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner, cursor, _ = task_state(db, task_id)
        if owner is not None and 0 < cursor < FAN_OUT:
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("ANALYZE deliveries")
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


def test_killed_dispatcher_leaves_its_fan_out_to_the_other(client: Client, pg_url: str, start: Start) -> None:
    """SIGKILL of the dispatcher writing a 50,000-recipient fan-out: the other takes the task over at
    its cursor and every user has exactly one message; counters equal rows."""
    # Small writes: the fan-out commits in 50 pieces, so the kill surely lands between two of them.
    procs = start("--batch-size", "1000")
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


def test_stopped_dispatcher_hands_its_fan_out_over_at_once(client: Client, pg_url: str, start: Start) -> None:
    """SIGTERM of the dispatcher writing a fan-out: it releases the task as it stops (no sweep needed),
    the other goes on at the cursor, and every user has exactly one message."""
    procs = start("--batch-size", "1000")
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


def all_tasks(client: Client, corp_id: str) -> list[dict[str, Any]]:
    """Every task of a corp, through the paged task list."""
    tasks: list[dict[str, Any]] = []
    before = None
    while True:
        params: dict[str, Any] = {"corp_id": corp_id, "limit": 200, **({"before": before} if before else {})}
        resp = client.api("GET", "/tasks", params=params)
        assert resp.status_code == 200, resp.text
        tasks += resp.json()["tasks"]
        before = resp.json()["next_before"]
        if before is None:
            return tasks


def test_dispatchers_in_two_processes_keep_each_apps_order(client: Client, pg_url: str, start: Start) -> None:
    """2 processes × 2 loops on 2,000 small tasks of four apps, accepted in a burst (two senders per
    app at once) before the dispatchers start, behind one send to everyone per app that takes its
    dispatcher a hundred writes: the backlog is twice what one claim takes, so the loops meet every
    app's tasks at once, and any loop that took an app's later tasks early would be done with them
    long before the send to everyone.

    Every task is decided once, by one dispatcher; of each content an app sends twice, the first task
    delivers and the second is forbidden (143106), never the reverse: one sender of each app sends
    each content twice in a row, the other all its contents and then all of them again, and each ends
    with the content of the app's send to everyone, to users that send reaches last. Nobody receives a
    content twice."""
    lanes = [(n, lane) for n in range(APPS) for lane in range(2)]
    per_lane = 2000 // len(lanes)
    everyone = {n: f"to everyone of app {n}" for n in range(APPS)}

    def send_lane(app_lane: tuple[int, int]) -> list[tuple[str, int, int]]:
        """(content, task_id, recipients) of each send, in the order sent."""
        n, lane = app_lane
        c = Client(client.base)
        token = c.token(f"small-{n}", f"small-{n}-secret")
        half = per_lane // 2
        order = [i // 2 for i in range(per_lane)] if lane == 0 else [i % half for i in range(per_lane)]
        sends = [
            (
                f"app {n} lane {lane} #{k}",
                [f"s{(k * 7 + j + lane * 100) % 200:04d}" for j in range(1 + k % 3)],
            )
            for k in order
        ]
        sends.append((everyone[n], [f"s{SMALL_USERS - 1 - lane * 10 - j:04d}" for j in range(3)]))
        sent = []
        for content, users in sends:
            body = c.send(token, agent_id=6000 + n, msg=text(content), userid_list=",".join(users))
            assert body["errcode"] == 0, body
            sent.append((content, body["task_id"], len(users)))
        return sent

    heads = []
    for n in range(APPS):
        token = client.token(f"small-{n}", f"small-{n}-secret")
        body = client.send(token, agent_id=6000 + n, msg=text(everyone[n]), to_all_user=True)
        heads.append((everyone[n], body["task_id"], SMALL_USERS))
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(lanes)) as pool:
        sent = [heads, *pool.map(send_lane, lanes)]
    accepted = time.monotonic()
    procs = start("--dispatchers", "2", "--batch-size", "20")
    client.drain(timeout=120)
    print(f"\naccepted in {accepted - t0:.1f} s, all decided {time.monotonic() - accepted:.1f} s later")
    counts = {task["task_id"]: task["counts"] for task in all_tasks(client, "small")}
    decided = [m[1] for proc in procs for line in proc.output if (m := DISPATCHED.search(line))]
    with psycopg.connect(pg_url) as conn:
        repeats = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE outcome = 0 AND agent_id >= 6000"
            " GROUP BY agent_id, userid, content_hash HAVING COUNT(*) > 1) AS twice"
        ).fetchone()
        rows = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT (task_seq, pos)) FROM deliveries WHERE agent_id >= 6000"
        ).fetchone()
        forbidden = conn.execute(
            "SELECT DISTINCT reason, code FROM deliveries WHERE agent_id >= 6000 AND outcome = 1"
        ).fetchall()
    print(f"tasks decided per dispatch process: {[len(proc.lines(' dispatched: ')) for proc in procs]}")

    assert len(counts) == sum(map(len, sent)) == 2000 + len(lanes) + APPS
    for head_content, head_id, head_size in heads:  # the send to everyone came first in its app
        assert counts[head_id] == {"delivered": head_size}, head_content
    for lane in sent[1:]:
        seen = set(everyone.values())
        for content, task_id, size in lane:
            assert counts[task_id] == ({"forbidden": size} if content in seen else {"delivered": size}), (
                content
            )
            seen.add(content)
    assert forbidden == [("duplicate_content", "143106")]
    assert sorted(decided) == sorted(str(task_id) for lane in sent for _, task_id, _ in lane)  # each once
    assert repeats == (0,)
    assert rows is not None and rows[0] == rows[1] == sum(size for lane in sent for _, _, size in lane)
