"""Dispatch that keeps up: bursts of small tasks decided in groups with every rule exact, and tasks
that cannot be decided ending instead of holding their app back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from support import MESSAGES, Client, ServerProcess, store_sql

USERS = 40
CAPPED, PACED = 5001, 5002  # a daily cap of 30 per user; a minute cap of 700 recipients
NOW = "2026-03-02T10:15:00+08:00"


def burst_org() -> dict[str, Any]:
    users = [{"userid": f"u{i:02d}", "name": f"U{i}", "dept_ids": [1]} for i in range(USERS)]
    users.append({"userid": "sleepy", "name": "Sleepy", "dept_ids": [1], "active": False})

    def app(agent_id: int, limits: dict[str, int]) -> dict[str, Any]:
        return {
            "agent_id": agent_id,
            "name": f"App {agent_id}",
            "type": "internal",
            "app_key": f"key-{agent_id}",
            "app_secret": f"secret-{agent_id}",
            "limits": limits,
        }

    return {
        "corps": [
            {
                "corp_id": "burst",
                "name": "Burst",
                "users": users,
                "apps": [app(CAPPED, {"daily_per_user": 30}), app(PACED, {"per_minute": 700})],
            }
        ]
    }


def plan(agent_id: int, count: int) -> list[tuple[str, str]]:
    """(userid, content) of one app's sends, in sending order: every 7th repeats an earlier content for
    the same user (same-content rule), every 50th names an unknown user, every 61st an inactive one."""
    sends = []
    for n in range(count):
        userid = f"u{(n * 7 + agent_id) % USERS:02d}"
        content = f"{agent_id} message {n}"
        if n % 7 == 6:
            content = f"{agent_id} message {n - USERS}"  # the content this user got 40 sends ago
        if n % 50 == 49:
            userid = "ghost"
        if n % 61 == 60:
            userid = "sleepy"
        sends.append((userid, content))
    return sends


def expected(sends: list[tuple[str, str]], daily_cap: int | None, minute_cap: int | None) -> list[str]:
    """The outcome of each send under DESIGN §3, decided one after another in acceptance order."""
    outcomes = []
    daily: dict[str, int] = {}
    spent: set[tuple[str, str]] = set()
    minute = 0
    for userid, content in sends:
        if userid == "ghost":
            outcomes.append("invalid_user")
        elif userid == "sleepy":
            outcomes.append("inactive_user")
        elif (userid, content) in spent:
            outcomes.append("duplicate_content")
        elif daily_cap is not None and daily.get(userid, 0) >= daily_cap:
            outcomes.append("daily_cap")
        elif minute_cap is not None and minute >= minute_cap:
            outcomes.append("minute_cap")
        else:
            outcomes.append("delivered")
            daily[userid] = daily.get(userid, 0) + 1
            spent.add((userid, content))
            minute += 1
    return outcomes


DETOUR = 97  # every 97th send also names a department that does not exist: a task for the loops


@pytest.mark.sqlite_only  # on a shared store the loops decide every task: the test below
def test_a_burst_of_5000_small_tasks_decided_as_accepted_keeps_every_rule_exact(start_server: Any) -> None:
    """The burst below with the defaults: most tasks are decided in their accepting transaction, and
    every 97th (a department list) goes to the dispatcher loops, so its app's next tasks wait for it
    there and the accepting transactions take over again after it. A department that does not exist
    changes no recipient, so the one-at-a-time model stands."""
    burst_is_exact(start_server("--test-controls"))


def test_a_burst_of_5000_small_tasks_decided_by_the_loops_keeps_every_rule_exact(start_server: Any) -> None:
    """The burst below with a dispatch delay: the loops decide every task, in groups."""
    burst_is_exact(start_server("--test-controls", "--dispatch-delay", "0.05"))


def burst_is_exact(server: ServerProcess) -> None:
    """5,000 one-recipient tasks from two apps, sent as fast as two clients can: each app's tasks are
    decided in acceptance order, and the daily cap, the minute cap, the same-content rule, unknown and
    inactive users fall exactly where one-at-a-time decisions would put them."""
    c = Client(server.url)
    assert c.load_org(burst_org()).status_code == 200
    c.freeze(NOW)  # one DingTalk day and one calendar minute for the whole burst
    plans = {CAPPED: plan(CAPPED, 2500), PACED: plan(PACED, 2500)}
    task_ids: dict[int, list[int]] = {}

    def send_all(agent_id: int) -> None:
        http = requests.Session()
        token = c.token(f"key-{agent_id}", f"secret-{agent_id}")
        ids = []
        for n, (userid, content) in enumerate(plans[agent_id]):
            body = {
                "agent_id": agent_id,
                "userid_list": userid,
                "msg": {"msgtype": "text", "text": {"content": content}},
            }
            if n % DETOUR == DETOUR - 1:
                body["dept_id_list"] = "999"
            answer = http.post(
                f"{c.base}{MESSAGES}asyncsend_v2", params={"access_token": token}, json=body
            ).json()
            assert answer["errcode"] == 0, answer
            ids.append(answer["task_id"])
        task_ids[agent_id] = ids

    threads = [threading.Thread(target=send_all, args=(agent,)) for agent in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.drain(timeout=120)

    local = threading.local()

    def reason(task_id: int) -> str:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        task = local.http.get(f"{c.base}/api/v1/tasks/{task_id}").json()
        assert task["status"] == 2, task
        (recipient,) = task["recipients"]
        return str(recipient["reason"] or recipient["outcome"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = {agent: list(pool.map(reason, ids)) for agent, ids in task_ids.items()}

    want = {CAPPED: expected(plans[CAPPED], 30, None), PACED: expected(plans[PACED], None, 700)}
    for agent in plans:
        assert len(got[agent]) == 2500
        mismatches = [
            (n, g, w) for n, (g, w) in enumerate(zip(got[agent], want[agent], strict=True)) if g != w
        ]
        assert not mismatches, f"app {agent}: first mismatches {mismatches[:5]}"
    # the rules were all crossed, not just the easy path
    assert {"daily_cap", "duplicate_content", "invalid_user", "inactive_user"} <= set(got[CAPPED])
    assert {"minute_cap", "duplicate_content"} <= set(got[PACED])


def send_and_look(server: ServerProcess, userids: str) -> tuple[Client, str, int, dict[str, int]]:
    """(client, token, task_id, progress) of a send, its progress asked the moment it is accepted."""
    c = Client(server.url)
    token = c.token()
    task_id = c.send(token, userid_list=userids)["task_id"]
    progress = c.oapi(MESSAGES + "getsendprogress", {"agent_id": 1001, "task_id": task_id}, token)
    return c, token, task_id, progress["progress"]


@pytest.mark.sqlite_only  # on a shared store claims keep the order across processes: the loops decide
def test_a_small_send_is_decided_before_its_task_id_is_returned(start_server: Any) -> None:
    """With the dispatcher on and nothing of its app waiting, a send of a few userids is decided in
    the transaction that accepts it: its progress and result are final at once, with no waiting."""
    server: ServerProcess = start_server("--log-level", "info")
    c, token, task_id, progress = send_and_look(server, "alice,dave,carol")
    assert progress == {"progress_in_percent": 100, "status": 2}
    result = c.result(token, task_id)
    assert (result["unread_user_id_list"], result["invalid_user_id_list"]) == (["alice"], ["dave"])
    assert result["failed_user_id_list"] == ["carol"]
    server.stop()
    lines = [line.split(" ", 2)[2].strip() for line in server.output if f"task {task_id} " in line]
    assert lines == [
        f"INFO dingbox.notifications: task {task_id} accepted: agent_id=1001 corp=dingdemo"
        " source=work_notification userids=3 depts=0 to_all=False",
        f"INFO dingbox.dispatch: task {task_id} of app 1001 dispatched: 3 recipients, 1 delivered,"
        " 1 failed, 1 invalid",
    ]


def test_without_dispatchers_a_send_waits_for_one(start_server: Any) -> None:
    """`--dispatchers 0` accepts only: a send stays pending, as on a process that only accepts."""
    server: ServerProcess = start_server("--dispatchers", "0")
    assert send_and_look(server, "alice")[3] == {"progress_in_percent": 0, "status": 0}


def test_tasks_that_cannot_be_decided_end_and_never_hold_their_app_back(start_server: Any) -> None:
    """A large task (departments) and a small one whose stored requests no dispatch can decide — as an
    older dingbox stored a 5,000-digit department id — end as status 2 with `dispatch_error`, logged once,
    and the app's later task is delivered."""
    # the delay leaves room to change the stored rows before dispatch, even on a loaded machine
    server: ServerProcess = start_server("--dispatch-delay", "8", "--log-level", "info")
    c = Client(server.url)
    token = c.token()
    large = c.send(token, dept_id_list="2", userid_list="alice")["task_id"]
    small = c.send(token, userid_list="alice,0356123401", msg={"msgtype": "text", "text": {"content": "s"}})[
        "task_id"
    ]
    # what an older release left in the store
    store_sql(
        server.db, "UPDATE tasks SET dept_ids = ? WHERE task_id = ?", (f'["{"9" * 5000}"]', large), write=True
    )
    store_sql(server.db, "UPDATE tasks SET userids = ? WHERE task_id = ?", ('["alice", ', small), write=True)
    later = c.send(token, userid_list="alice", msg={"msgtype": "text", "text": {"content": "later"}})[
        "task_id"
    ]

    after = c.task(later, wait=40)
    first, second = c.task(large, wait=0), c.task(small, wait=0)

    assert (after["status"], after["counts"]) == (2, {"delivered": 1})
    assert first["status"] == 2
    assert [(r["userid"], r["outcome"], r["reason"]) for r in first["recipients"]] == [
        ("alice", "failed", "dispatch_error")
    ]
    assert (second["status"], second["recipients"]) == (2, [])  # its userids cannot even be read
    assert c.result(token, large)["failed_user_id_list"] == ["alice"]
    server.stop()
    log = "".join(server.output)
    for task_id in (large, small):
        assert log.count(f"task {task_id} of app 1001 cannot be dispatched") == 1, log[-3000:]
