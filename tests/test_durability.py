"""Durability of sends (DESIGN §3 "Exactly once", §2 stores): concurrency, crashes and real asynchrony."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from dingbox.store import open_store
from dingbox.store.base import Tx
from dingbox.store.sqlite.backend import WAL_RESTART_FRAMES, SQLiteStore
from support import DEMO_AGENT, MESSAGES, Client, ServerProcess, make_org, store_sql, text

BIG = 20_000
UNLIMITED = ("--limits", "unlimited")  # and the default write sizes


def rows_of(db: str, task_id: int) -> int:
    """Deliveries of a task committed so far, as an outside observer of the store sees them."""
    ((rows,),) = store_sql(
        db,
        "SELECT COUNT(*) FROM deliveries WHERE task_seq = (SELECT seq FROM tasks WHERE task_id = ?)",
        (task_id,),
    )
    return int(rows)


def send_until(stop: threading.Event, base: str, token: str, tag: str) -> None:
    """Small sends of the big corp's app, one after another, until `stop` or the server goes away."""
    sender = Client(base)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            sender.send(token, agent_id=5001, msg=text(f"{tag} {n}"), userid_list="u00001")
        except requests.RequestException:
            return


def big_corp(c: Client) -> str:
    """Load a corp of 20,000 users in one department and give its app's token."""
    assert c.load_org(make_org("big", users=BIG)).status_code == 200
    return c.token("acme-key", "acme-secret")


def test_concurrent_identical_sends_deliver_once_per_user(client: Client) -> None:
    """200 concurrent identical sends are all accepted, yet each user receives the content once (143106)."""
    token = client.token()
    body = {"agent_id": DEMO_AGENT, "userid_list": "alice,0356123401,carol", "msg": text("同一条")}
    url = f"{client.base}{MESSAGES}asyncsend_v2"
    local = threading.local()  # one keep-alive session per worker thread

    def send(_: int) -> dict[str, Any]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        answer: dict[str, Any] = local.session.post(url, params={"access_token": token}, json=body).json()
        return answer

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(send, range(200)))
    client.drain()
    results = [client.result(token, a["task_id"]) for a in answers]

    assert {(a["errcode"], a["errmsg"]) for a in answers} == {(0, "ok")}
    assert len({a["task_id"] for a in answers}) == 200
    assert [len(client.inbox(u)) for u in ("alice", "0356123401", "carol")] == [1, 1, 0]
    winners = [r for r in results if r["unread_user_id_list"]]
    assert len(winners) == 1 and winners[0]["unread_user_id_list"] == ["alice", "0356123401"]
    losers = [r for r in results if not r["unread_user_id_list"]]
    assert len(losers) == 199
    assert all(
        r["forbidden_list"]
        == [
            {"code": "143106", "count": 1, "userid": "alice"},
            {"code": "143106", "count": 1, "userid": "0356123401"},
        ]
        and r["failed_user_id_list"] == ["carol"]
        for r in losers
    )


def test_crash_mid_fan_out_resumes_and_delivers_each_recipient_once(
    start_server: Callable[..., ServerProcess], new_store: Callable[[], str], store_backend: str
) -> None:
    """A dispatcher killed mid-task resumes on restart: each recipient exactly once, counters equal rows.

    On SQLite the server runs with its default write sizes; sends accepted meanwhile make the fan-out
    commit in pieces (a write gives way to waiting sends), so the kill lands between two of its commits.
    PostgreSQL has no single writer for a send to wait behind: there the fan-out writes 2,000 at a time."""
    db = new_store()
    args = (*UNLIMITED, "--batch-size", "2000") if store_backend == "postgresql" else UNLIMITED
    proc = start_server(*args, db=db)
    big_corp(Client(proc.url))
    killed_at, task_id = 0, 0
    for attempt in range(5):
        c = Client(proc.url)
        token = c.token("acme-key", "acme-secret")
        task_id = c.send(token, agent_id=5001, msg=text(f"crash {attempt}"), to_all_user=True)["task_id"]
        stop = threading.Event()

        sender = threading.Thread(target=send_until, args=(stop, proc.url, token, f"meanwhile {attempt}"))
        sender.start()
        deadline = time.monotonic() + 30
        while not 0 < rows_of(db, task_id) < BIG and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.kill()
        stop.set()
        sender.join()
        killed_at = rows_of(db, task_id)
        print(f"\nattempt {attempt}: killed with {killed_at} of {BIG} deliveries written")
        proc = start_server(*args, db=db)
        if 0 < killed_at < BIG:
            break

    c = Client(proc.url)
    task = c.task(task_id, wait=60, limit=1)
    ((seq,),) = store_sql(db, "SELECT seq FROM tasks WHERE task_id = ?", (task_id,))
    ((rows, users, positions, delivered),) = store_sql(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT userid), COUNT(DISTINCT pos),"
        " SUM(CASE WHEN outcome = 0 THEN 1 ELSE 0 END) FROM deliveries WHERE task_seq = ?",
        (seq,),
    )
    ((app_rows,),) = store_sql(db, "SELECT COUNT(*) FROM deliveries WHERE agent_id = 5001 AND outcome = 0")
    ((counted,),) = store_sql(db, "SELECT SUM(n) FROM minute_counts WHERE agent_id = 5001")

    assert 0 < killed_at < BIG
    assert (task["status"], task["counts"]) == (2, {"delivered": BIG})
    assert (rows, users, positions, delivered) == (BIG, BIG, BIG, BIG)
    assert counted == app_rows


def test_accepted_task_survives_a_kill_right_after_the_response(
    start_server: Callable[..., ServerProcess], new_store: Callable[[], str]
) -> None:
    """A task is durable once its task_id is answered: after SIGKILL it still delivers; a resend is 143106."""
    db = new_store()
    users = "u00000,u00001,u00002"
    proc = start_server("--dispatchers", "0", db=db)  # accept only, so the kill surely precedes delivery
    c = Client(proc.url)
    assert c.load_org(make_org("acme", users=3)).status_code == 200
    first = c.send(c.token("acme-key", "acme-secret"), agent_id=5001, msg=text("durable"), userid_list=users)
    proc.kill()
    (status,) = store_sql(db, "SELECT status FROM tasks WHERE task_id = ?", (first["task_id"],))

    c = Client(start_server(db=db).url)
    token = c.token("acme-key", "acme-secret")
    again = c.send(token, agent_id=5001, msg=text("durable"), userid_list=users)
    c.drain()

    assert first["errcode"] == 0 and status == (0,)
    assert c.result(token, first["task_id"], agent_id=5001)["unread_user_id_list"] == users.split(",")
    assert c.result(token, again["task_id"], agent_id=5001)["forbidden_list"] == [
        {"code": "143106", "count": 1, "userid": u} for u in users.split(",")
    ]


def test_send_returns_before_its_fan_out(start_server: Callable[..., ServerProcess]) -> None:
    """asyncsend_v2 answers with the task_id long before the 20,000-recipient fan-out it starts is done."""
    c = Client(start_server(*UNLIMITED).url)
    token = big_corp(c)
    c.send(token, agent_id=5001, msg=text("warm-up"), userid_list="u00000")  # connections and caches
    c.drain()

    t0 = time.monotonic()
    answer = c.send(token, agent_id=5001, msg=text("everyone"), to_all_user=True)
    accept_time = time.monotonic() - t0
    task = c.task(answer["task_id"], wait=60, limit=1)
    fan_out_time = time.monotonic() - t0
    print(f"\naccept {accept_time * 1000:.1f} ms, fan-out of {BIG} recipients {fan_out_time * 1000:.1f} ms")

    assert (answer["errcode"], task["status"], task["counts"]) == (0, 2, {"delivered": BIG})
    assert accept_time < fan_out_time / 5


def test_the_wal_is_restarted_under_writes_that_never_pause(tmp_path: Path) -> None:
    """Commits that never leave the checkpointer a moment to catch up (four threads writing back to
    back, a fifth reading, as under wrk): the WAL is still restarted and stays near its threshold
    (`WAL_RESTART_FRAMES`, about 41 MB, plus what commits add during a checkpoint pass and its
    pause). It used to grow by every commit's pages, without end."""
    store = open_store(f"sqlite:///{tmp_path / 'wal.db'}")
    assert isinstance(store, SQLiteStore)
    wal = tmp_path / "wal.db-wal"
    frame = 4096 + 24
    written = 8 * WAL_RESTART_FRAMES * frame  # eight times the threshold
    stop = threading.Event()
    largest = 0

    def put(tx: Tx, key: str) -> None:  # two pages a commit: a row larger than one
        tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, "x" * 5000))

    def write(worker: int) -> None:
        n = 0
        while not stop.is_set():
            store.write_sync(put, f"w{worker}-{n}")
            n += 1

    def read() -> None:
        while not stop.is_set():
            store.read_sync(lambda tx: tx.one("SELECT COUNT(*) FROM meta"))

    try:
        with ThreadPoolExecutor(max_workers=5) as pool:
            running = [pool.submit(write, w) for w in range(4)] + [pool.submit(read)]
            deadline = time.monotonic() + 120
            total = 0
            while total < written and time.monotonic() < deadline:
                time.sleep(0.01)
                size = wal.stat().st_size
                largest = max(largest, size)
                total = store.read_sync(lambda tx: tx.one("SELECT COUNT(*) FROM meta"))[0] * 2 * frame
            stop.set()
            for future in running:
                future.result()
    finally:
        stop.set()
        store.close()
    assert total >= written, "the writers were too slow to show anything"
    assert largest <= 3 * WAL_RESTART_FRAMES * frame, f"the WAL reached {largest / 1e6:.0f} MB"
