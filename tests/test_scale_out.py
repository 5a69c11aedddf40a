"""Scale-out on PostgreSQL: two `serve` processes (accept only) and one `dingbox dispatch` on one database.

Every rule falls as on one process (same content, the daily cap at its boundary, decided by the
store under concurrent sends through both servers); a clock, org or template change made through one
process is honoured by the other and by the dispatcher within a second; waits, event streams and live
pages of one process see the work of the others.

Needs DINGBOX_TEST_POSTGRES_URL (a database the tests may create other databases from, e.g.
postgresql://postgres@127.0.0.1:5432/test). Without it the tests skip, except under CI=true, where
they fail: CI must run them.
"""

from __future__ import annotations

import copy
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import requests

from conftest import DEMO_ORG
from support import MESSAGES, Client, DispatchProcess, ServerProcess, text
from test_ui_browser import Page, browser  # noqa: F401  (the browser tests' fixture)

POSTGRES_URL = os.environ.get("DINGBOX_TEST_POSTGRES_URL", "")
SETTLE = 1.0  # the bound within which every process follows a change another one made
DISPATCH_DELAY = 0.5  # on server B only: its tasks wait a moment, so a wait on A really waits


@pytest.fixture(scope="module")
def postgres_url() -> str:
    if not POSTGRES_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("DINGBOX_TEST_POSTGRES_URL is not set: CI runs the scale-out tests on PostgreSQL")
        pytest.skip("set DINGBOX_TEST_POSTGRES_URL=postgresql://… to run the scale-out tests")
    return POSTGRES_URL


pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("postgres_url")]


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """A database of its own, dropped afterwards."""
    import psycopg

    name = f"dbxr_scale_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urlsplit(postgres_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Cluster:
    def __init__(self, url: str, a: ServerProcess, b: ServerProcess, dispatcher: DispatchProcess) -> None:
        self.url, self.a, self.b, self.dispatcher = url, a, b, dispatcher


@pytest.fixture(scope="module")
def cluster(database: str) -> Iterator[Cluster]:
    """Servers A and B (no dispatchers) and one dispatcher process, all on `database`."""
    args = ["--dispatchers", "0", "--test-controls"]
    a = ServerProcess(database, args).start()
    b = ServerProcess(database, [*args, "--dispatch-delay", str(DISPATCH_DELAY)]).start()
    dispatcher = DispatchProcess(database).start()
    try:
        yield Cluster(database, a, b, dispatcher)
    finally:
        dispatcher.stop()
        b.stop()
        a.stop()


@pytest.fixture
def clients(cluster: Cluster) -> tuple[Client, Client]:
    """Clients of A and B after a reset and the demo org, both made on A and followed everywhere."""
    a, b = Client(cluster.a.url), Client(cluster.b.url)
    a.reset()
    assert a.load_org(DEMO_ORG).status_code == 200
    time.sleep(SETTLE)
    return a, b


def within(check: Callable[[], bool], seconds: float = SETTLE) -> float:
    """How long `check` took to hold; fails when it does not hold within `seconds`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            pytest.fail(f"not within {seconds}s")
        time.sleep(0.02)
    return time.monotonic() - start


def concurrently(jobs: list[Callable[[Client], dict[str, Any]]], bases: list[str]) -> list[dict[str, Any]]:
    """Run job i against server bases[i % len(bases)], 16 at a time, each thread with its own sessions."""
    local = threading.local()

    def run(numbered: tuple[int, Callable[[Client], dict[str, Any]]]) -> dict[str, Any]:
        n, job = numbered
        if not hasattr(local, "clients"):
            local.clients = [Client(base) for base in bases]
        return job(local.clients[n % len(bases)])

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(run, enumerate(jobs)))


def send_job(token: str, msg: dict[str, Any], **fields: Any) -> Callable[[Client], dict[str, Any]]:
    return lambda c: c.send(token, msg, **fields)


def forbidden(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(code, userid) of getsendresult's forbidden_list (its count is the rule's, e.g. the day's sends)."""
    return [(f["code"], f["userid"]) for f in result["forbidden_list"]]


def delivered_to(result: dict[str, Any]) -> list[str]:
    return list(result["read_user_id_list"]) + list(result["unread_user_id_list"])


class EventStream:
    """`/api/v1/events` of one server, read on a thread."""

    def __init__(self, base: str) -> None:
        self.resp = requests.get(f"{base}/api/v1/events", stream=True, timeout=30)
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        kind, _ = self.events.get(timeout=5)
        assert kind == "ready"

    def _read(self) -> None:
        kind = ""
        try:
            for line in self.resp.iter_lines():
                if line.startswith(b"event: "):
                    kind = line[7:].decode()
                elif line.startswith(b"data: "):
                    self.events.put((kind, orjson.loads(line[6:])))
        except (requests.RequestException, AttributeError):  # closed by the test
            pass

    def until(self, wanted: Callable[[str, dict[str, Any]], bool], seconds: float = 10.0) -> list[str]:
        """Kinds read until one `wanted`, which ends the list."""
        seen, deadline = [], time.monotonic() + seconds
        while True:
            try:
                kind, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the awaited event did not come within {seconds}s; came: {seen}")
            seen.append(kind)
            if wanted(kind, data):
                return seen

    def close(self) -> None:
        self.resp.close()


# -- rules decided by the store, whichever process accepted ------------------------------------------


def test_two_hundred_identical_sends_through_two_servers_deliver_once(clients: tuple[Client, Client]) -> None:
    a, b = clients
    token = a.token()
    answers = concurrently(
        [send_job(token, text("deploy 7 done"), userid_list="alice")] * 200, [a.base, b.base]
    )
    assert [x["errcode"] for x in answers] == [0] * 200, answers[:3]
    a.drain()
    results = concurrently([lambda c, t=x["task_id"]: c.result(token, t) for x in answers], [a.base, b.base])
    once = [r for r in results if delivered_to(r) == ["alice"]]
    refused = [r for r in results if forbidden(r) == [("143106", "alice")]]
    assert len(once) == 1 and not forbidden(once[0])
    assert len(refused) == 199
    assert len(a.inbox("alice")) == len(b.inbox("alice")) == 1
    for x, result in zip(answers[:4], results, strict=False):  # the task API, from either server, agrees
        counts = {"delivered": 1} if delivered_to(result) else {"forbidden": 1}
        assert a.task(x["task_id"])["counts"] == b.task(x["task_id"])["counts"] == counts


def test_the_daily_cap_falls_at_its_boundary_with_sends_through_two_servers(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    doc = copy.deepcopy(DEMO_ORG)
    doc["corps"][0]["apps"][0]["limits"] = {"daily_per_user": 5}  # the demo's internal app
    assert a.load_org(doc).status_code == 200
    time.sleep(SETTLE)  # the dispatcher decides under the new per-app cap
    token = b.token()
    jobs = [send_job(token, text(f"build {n} finished"), userid_list="alice") for n in range(20)]
    answers = concurrently(jobs, [b.base, a.base])
    a.drain()
    results = [
        a.result(token, x["task_id"]) if n % 2 else b.result(token, x["task_id"])
        for n, x in enumerate(answers)
    ]
    delivered = [r for r in results if delivered_to(r) == ["alice"]]
    capped = [r for r in results if forbidden(r) == [("143105", "alice")]]
    assert (len(delivered), len(capped)) == (5, 15)
    assert len(a.inbox("alice")) == 5


# -- state changes made through one process, honoured by the others -------------------------------


def test_a_clock_change_on_one_server_is_honoured_by_the_other_and_the_dispatcher(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    a.freeze("2030-05-01T23:59:00+08:00")
    within(lambda: b.api("GET", "/clock").json()["now"] == "2030-05-01T23:59:00.000+08:00")
    token = b.token()  # of virtual time: one from before the jump would have expired
    first = b.send(token, text("nightly report"), userid_list="alice")["task_id"]
    again = a.send(token, text("nightly report"), userid_list="alice")["task_id"]
    assert b.task(first)["counts"] == {"delivered": 1}
    assert a.task(again)["counts"] == {"forbidden": 1}

    a.advance(120)  # into the next DingTalk day, on the clock A reads from the store
    within(lambda: b.api("GET", "/clock").json()["now"] == "2030-05-02T00:01:00.000+08:00")
    next_day = b.send(token, text("nightly report"), userid_list="alice")["task_id"]
    assert a.task(next_day)["counts"] == {"delivered": 1}
    newest = a.inbox("alice")[0]
    assert newest["task_id"] == next_day
    assert newest["created_at"] == "2030-05-02T00:01:00.000+08:00"  # the dispatcher's clock moved too


def test_an_org_change_on_one_server_is_honoured_by_the_other_and_the_dispatcher(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    isv = b.isv_token()
    # The partner app sees department 2; the dispatcher learns its members with this first send.
    before = b.send(isv, text("welcome"), agent_id=2001, userid_list="alice")["task_id"]
    assert a.task(before)["counts"] == {"delivered": 1}

    doc = copy.deepcopy(DEMO_ORG)
    corp = doc["corps"][0]
    corp["users"].append({"userid": "dave", "name": "Dave", "dept_ids": [2]})
    corp["apps"].append(
        {
            "agent_id": 1002,
            "name": "Builds",
            "type": "internal",
            "app_key": "ci-key",
            "app_secret": "ci-secret",
        }
    )
    assert a.load_org(doc).status_code == 200

    def b_knows_the_new_app() -> bool:
        return bool(
            b.http.get(f"{b.base}/gettoken", params={"appkey": "ci-key", "appsecret": "ci-secret"}).json()[
                "errcode"
            ]
            == 0
        )

    within(b_knows_the_new_app)
    time.sleep(SETTLE)  # the bound for the dispatcher, which nothing outside can watch
    to_dave = b.send(isv, text("welcome"), agent_id=2001, userid_list="dave")["task_id"]
    assert [(r["userid"], r["outcome"]) for r in a.task(to_dave)["recipients"]] == [("dave", "delivered")]
    builds = b.token("ci-key", "ci-secret")
    assert a.task(b.send(builds, text("green"), agent_id=1002, userid_list="dave")["task_id"])["counts"] == {
        "delivered": 1
    }


def test_a_template_edit_on_one_server_is_honoured_by_a_send_through_the_other(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    edited = {
        "msgtype": "markdown",
        "markdown": {"title": "Hi ${name}", "text": "Edited for ${name}: ${url}"},
    }
    assert a.api("PUT", "/templates/tpl-welcome", json={"msg": edited}).status_code == 200
    body = {
        "agent_id": 2001,
        "template_id": "tpl-welcome",
        "userid_list": "alice",
        "data": {"name": "Ann", "url": "u"},
    }
    answer = b.oapi(MESSAGES + "sendbytemplate", body, b.isv_token())
    assert answer["errcode"] == 0, answer
    assert a.task(answer["task_id"])["counts"] == {"delivered": 1}
    assert a.inbox("alice")[0]["content"] == {"title": "Hi Ann", "text": "Edited for Ann: u"}


def test_a_reset_on_one_server_ends_the_tokens_the_other_holds(clients: tuple[Client, Client]) -> None:
    a, b = clients
    token = a.token()
    assert b.send(token, userid_list="alice")["errcode"] == 0  # B now holds the token in memory
    a.reset()
    within(lambda: b.send(token, userid_list="alice").get("sub_code") == "40014")
    fresh = a.token()
    a.advance(60)  # a change that is not a reset keeps B's tokens
    within(lambda: b.api("GET", "/clock").json()["offset_seconds"] >= 59)
    for _ in range(3):
        assert b.send(fresh, userid_list="alice")["errcode"] == 0


def test_a_change_made_while_a_listener_is_away_is_taken_up_when_it_returns(
    cluster: Cluster, clients: tuple[Client, Client]
) -> None:
    """A notification sent while B's listener is disconnected is lost: once back, B compares the
    stored generations and reloads, and tells its subscribers that events may have been missed."""
    import psycopg

    a, b = clients
    assert cluster.b.proc is not None
    stream = EventStream(b.base)
    listener = f"dingbox listener {cluster.b.proc.pid}"
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (listener,),
            ).fetchall()
            assert ended == [(True,)]
            a.freeze("2031-02-03T04:05:06+08:00")
        stream.until(lambda k, d: k == "overflow")  # returns once it came; fails on its timeout
        within(lambda: b.api("GET", "/clock").json()["now"] == "2031-02-03T04:05:06.000+08:00", seconds=5.0)
    finally:
        stream.close()


def test_a_change_whose_notification_never_went_out_is_found_by_the_watch(
    cluster: Cluster, clients: tuple[Client, Client]
) -> None:
    """A clock change written straight to the store, with no event at all (as when the notifier
    could not send): every server finds the new generation by its watch within two seconds."""
    from dingbox.clock import ClockState, parse_iso
    from dingbox.store import open_store, state_sql

    a, b = clients
    store = open_store(cluster.url)
    try:
        at = parse_iso("2032-07-08T09:10:11+08:00")
        store.write_sync(state_sql.set_clock, ClockState(offset_seconds=at - time.time(), frozen_at=at))
    finally:
        store.close()
    for c in (a, b):
        within(lambda c=c: c.api("GET", "/clock").json()["now"] == "2032-07-08T09:10:11.000+08:00", 2.5)


# -- waits, event streams and live pages across processes ---------------------------------------


def test_a_wait_on_one_server_ends_when_the_dispatcher_finishes_a_task_accepted_by_the_other(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    task_id = b.send(b.token(), text("wait for me"), userid_list="alice")["task_id"]
    assert a.task(task_id, wait=0)["status"] == 0  # B's dispatch delay holds it back
    start = time.monotonic()
    task = a.task(task_id, wait=30)
    took = time.monotonic() - start
    assert task["status"] == 2 and task["counts"] == {"delivered": 1}
    assert took < DISPATCH_DELAY + 2.0  # woken by the relayed task.finished, not the end of the wait


def test_the_event_stream_of_one_server_shows_a_send_made_on_the_other(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    stream = EventStream(a.base)
    try:
        task_id = b.send(b.token(), text("streamed"), userid_list="alice")["task_id"]
        kinds = stream.until(lambda k, d: k == "task.finished" and d["task_id"] == task_id)
        mine = [k for k in kinds if k in ("task.accepted", "message.delivered", "task.finished")]
        assert mine[-3:] == ["task.accepted", "message.delivered", "task.finished"]
        b.freeze("2030-06-01T08:00:00+08:00")  # a change of B's, shown on A once A has loaded it
        stream.until(lambda k, d: k == "clock.changed" and d["now"] == "2030-06-01T08:00:00.000+08:00")
        assert a.api("GET", "/clock").json()["now"] == "2030-06-01T08:00:00.000+08:00"
    finally:
        stream.close()


@pytest.mark.browser
def test_a_live_page_on_one_server_shows_a_message_accepted_by_the_other(
    clients: tuple[Client, Client],
    browser: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    a, b = clients
    page = Page(browser, a.base)
    try:
        p = page.open("/corps/dingdemo/users/alice")
        b.send(b.token(), text("deploy 99 finished"), userid_list="alice")
        p.wait_for_selector("article.item.unread >> text=deploy 99 finished", timeout=5000)
        assert page.console == []
    finally:
        page.context.close()
