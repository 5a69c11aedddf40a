"""getsendprogress, getsendresult, recall and status_bar/update (spec §3.3–§3.6, DESIGN §3, §4)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from support import DEMO_AGENT, DEMO_ISV_AGENT, MESSAGES, Client, ServerProcess, make_org, text

USERS = "alice,0356123401"
OA = {
    "msgtype": "oa",
    "oa": {
        "message_url": "https://example.com/approval/1",
        "head": {"bgcolor": "FFBBBBBB", "text": "审批"},
        "status_bar": {"status_value": "待审批", "status_bg": "0xFFFF9D46"},
        "body": {"title": "报销单", "content": "差旅 120 元"},
    },
}
START = "2026-03-02T10:00:00+08:00"
DAY = 86400


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(body.pop("request_id"), str)
    return body


def progress(c: Client, token: str, task_id: int, agent_id: int = DEMO_AGENT) -> dict[str, Any]:
    return c.oapi(MESSAGES + "getsendprogress", {"agent_id": agent_id, "task_id": task_id}, token)


def message_of(c: Client, userid: str, task_id: int) -> dict[str, Any]:
    found = [m for m in c.inbox(userid, limit=200) if m["task_id"] == task_id]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def slow(module_store: Callable[[], AbstractContextManager[str]]) -> Iterator[ServerProcess]:
    """A server whose tasks wait 2 s before dispatch, then fan out 2 recipients every 0.3 s."""
    with module_store() as db:
        args = ["--test-controls", "--dispatch-delay", "2", "--batch-size", "2", "--batch-pause", "0.3"]
        proc = ServerProcess(db, args).start()
        yield proc
        proc.stop()


@pytest.fixture
def slow_client(slow: ServerProcess) -> Client:
    c = Client(slow.url)
    c.reset()
    assert c.load_org(make_org("acme", users=10)).status_code == 200
    return c


# -- getsendprogress ----------------------------------------------------------------------------


def test_progress_goes_from_not_started_through_processing_to_finished(slow_client: Client) -> None:
    """getsendprogress reports status 0 before dispatch, 1 with a partial percentage, then 2 at 100."""
    c = slow_client
    token = c.token("acme-key", "acme-secret")
    userids = ",".join(f"u{i:05d}" for i in range(10))
    task_id = c.send(token, agent_id=5001, userid_list=userids)["task_id"]

    first = progress(c, token, task_id, 5001)
    seen = [(first["progress"]["status"], first["progress"]["progress_in_percent"])]
    deadline = time.monotonic() + 15
    while seen[-1][0] != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        body = progress(c, token, task_id, 5001)
        seen.append((body["progress"]["status"], body["progress"]["progress_in_percent"]))

    assert sorted(first) == ["errcode", "errmsg", "progress", "request_id"]
    assert (first["errcode"], first["errmsg"]) == (0, "ok")
    assert seen[0] == (0, 0)
    assert seen[-1] == (2, 100)
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    assert any(s == 1 and 0 < p < 100 for s, p in seen), seen


@pytest.mark.parametrize(
    ("path", "name", "extra"),
    [
        ("getsendprogress", "task_id", {}),
        ("getsendresult", "task_id", {}),
        ("recall", "msg_task_id", {}),
        ("status_bar/update", "task_id", {"status_value": "已完成"}),
    ],
)
def test_unknown_foreign_app_and_foreign_corp_tasks_are_indistinguishable(
    client: Client, path: str, name: str, extra: dict[str, Any]
) -> None:
    """An unknown task, another app's task and another corp's task all answer 40035 不合法的参数 <name>."""
    assert client.load_org(make_org("acme", users=1)).status_code == 200
    demo_task = client.sent(client.token(), msg=OA, userid_list=USERS)
    isv, acme = client.isv_token(), client.token("acme-key", "acme-secret")
    other_corp_task = client.sent(acme, agent_id=5001, msg=OA, userid_list="u00000")

    answers = [
        client.oapi(MESSAGES + path, {"agent_id": DEMO_AGENT, name: 1 << 40, **extra}, client.token()),
        client.oapi(MESSAGES + path, {"agent_id": DEMO_ISV_AGENT, name: demo_task, **extra}, isv),
        client.oapi(MESSAGES + path, {"agent_id": 5001, name: demo_task, **extra}, acme),
        client.oapi(
            MESSAGES + path, {"agent_id": DEMO_AGENT, name: other_corp_task, **extra}, client.token()
        ),
    ]

    expected = {"errcode": 40035, "errmsg": f"不合法的参数 {name}"}
    assert [without_request_id(a) for a in answers] == [expected] * 4


def test_progress_requires_task_id_and_agent_id(client: Client) -> None:
    """getsendprogress without task_id or agent_id is 40035 缺少参数 <name>; a bad task_id 不合法的参数."""
    token = client.token()
    task_id = client.sent(token, userid_list="alice")

    no_task = client.oapi(MESSAGES + "getsendprogress", {"agent_id": DEMO_AGENT}, token)
    no_agent = client.oapi(MESSAGES + "getsendprogress", {"task_id": task_id}, token)
    not_int = client.oapi(MESSAGES + "getsendprogress", {"agent_id": DEMO_AGENT, "task_id": "12ab"}, token)

    assert without_request_id(no_task) == {"errcode": 40035, "errmsg": "缺少参数 task_id"}
    assert without_request_id(no_agent) == {"errcode": 40035, "errmsg": "缺少参数 agent_id"}
    assert without_request_id(not_int) == {"errcode": 40035, "errmsg": "不合法的参数 task_id"}


def test_agent_id_that_is_not_the_tokens_app_is_400002(client: Client) -> None:
    """Naming another app's agent_id on a task call answers 400002 agentId不合法, as on a send."""
    task_id = client.sent(client.token(), userid_list="alice")

    body = progress(client, client.isv_token(), task_id, DEMO_AGENT)

    assert without_request_id(body) == {"errcode": 400002, "errmsg": "agentId不合法"}


# -- getsendresult ------------------------------------------------------------------------------


def test_send_result_has_every_list_as_arrays(client: Client) -> None:
    """getsendresult fills every send_result key with arrays; forbidden_list holds {code, count, userid}."""
    token = client.token()
    client.sent(token, msg=text("周报"), userid_list="alice")
    task_id = client.sent(
        token, msg=text("周报"), userid_list="alice,0356123401,carol,ghost", dept_id_list="999"
    )

    body = client.oapi(MESSAGES + "getsendresult", {"agent_id": DEMO_AGENT, "task_id": task_id}, token)

    assert sorted(body) == ["errcode", "errmsg", "request_id", "send_result"]
    assert body["send_result"] == {
        "invalid_user_id_list": ["ghost"],
        "forbidden_user_id_list": ["alice"],
        "failed_user_id_list": ["carol"],
        "read_user_id_list": [],
        "unread_user_id_list": ["0356123401"],
        "invalid_dept_id_list": [999],
        "forbidden_list": [{"code": "143106", "count": 1, "userid": "alice"}],
    }


def test_send_result_agent_id_is_optional(client: Client) -> None:
    """getsendresult answers without agent_id (optional in DingTalk's reference) for the token's task."""
    token = client.token()
    task_id = client.sent(token, userid_list="alice")

    body = client.oapi(MESSAGES + "getsendresult", {"task_id": task_id}, token)

    assert (body["errcode"], body["send_result"]["unread_user_id_list"]) == (0, ["alice"])


def test_send_result_follows_reads(client: Client) -> None:
    """getsendresult is current: once a recipient reads the message it moves from unread to read."""
    token = client.token()
    task_id = client.sent(token, userid_list=USERS)
    before = client.result(token, task_id)

    read = client.api("POST", f"/messages/{message_of(client, 'alice', task_id)['id']}/read")
    after = client.result(token, task_id)

    assert (before["read_user_id_list"], before["unread_user_id_list"]) == ([], ["alice", "0356123401"])
    assert read.status_code == 200
    assert (after["read_user_id_list"], after["unread_user_id_list"]) == (["alice"], ["0356123401"])


def test_send_result_lists_keep_decision_order_through_reads(client: Client) -> None:
    """Each list is in decision order whatever mix of outcomes a task has; reading twice counts once,
    and once every delivered recipient has read, they are all in read_user_id_list."""
    users = [{"userid": f"p{i}", "name": f"P{i}", "dept_ids": [1]} for i in range(8)]
    apps = [
        {
            "agent_id": 5001,
            "name": "Acme",
            "type": "internal",
            "app_key": "acme-key",
            "app_secret": "acme-secret",
        }
    ]
    assert client.load_org(make_org(extra_users=users, apps=apps)).status_code == 200
    token = client.token("acme-key", "acme-secret")
    first = client.send(token, agent_id=5001, userid_list="p1,p4,p6")
    assert client.task(first["task_id"])["status"] == 2
    task_id = client.send(token, agent_id=5001, userid_list="p7,p6,ghost,p5,p4,p3,p2,p1,p0")["task_id"]
    assert client.task(task_id)["status"] == 2

    def result() -> dict[str, Any]:
        return client.result(token, task_id, agent_id=5001)

    before = result()
    unread = ["p7", "p5", "p3", "p2", "p0"]
    for userid in ("p5", "p5", "p0"):
        [message] = [m for m in client.inbox(userid, corp_id="acme") if m["task_id"] == task_id]
        assert client.api("POST", f"/messages/{message['id']}/read").status_code == 200
    middle = result()
    for userid in ("p7", "p3", "p2"):
        [message] = [m for m in client.inbox(userid, corp_id="acme") if m["task_id"] == task_id]
        assert client.api("POST", f"/messages/{message['id']}/read").status_code == 200
    after = result()

    assert before["unread_user_id_list"] == unread and before["read_user_id_list"] == []
    assert before["forbidden_user_id_list"] == ["p6", "p4", "p1"]
    assert [e["userid"] for e in before["forbidden_list"]] == ["p6", "p4", "p1"]
    assert before["invalid_user_id_list"] == ["ghost"]
    assert (middle["unread_user_id_list"], middle["read_user_id_list"]) == (["p7", "p3", "p2"], ["p5", "p0"])
    assert (after["unread_user_id_list"], after["read_user_id_list"]) == ([], unread)
    assert after["forbidden_user_id_list"] == ["p6", "p4", "p1"]


def test_send_result_only_for_tasks_of_the_last_24_hours(client: Client) -> None:
    """getsendresult answers for 24 h after acceptance and then 40035 naming the 24 h window."""
    client.freeze(START)
    token = client.token()
    task_id = client.sent(token, userid_list="alice")
    query = {"agent_id": DEMO_AGENT, "task_id": task_id}

    client.advance(DAY)
    token = client.token()  # the first one expired on the virtual clock
    at_limit = client.oapi(MESSAGES + "getsendresult", query, token)
    client.advance(1)
    past = client.oapi(MESSAGES + "getsendresult", query, token)

    assert at_limit["errcode"] == 0
    assert without_request_id(past) == {
        "errcode": 40035,
        "errmsg": "不合法的参数 task_id: 只能查询24小时内的发送结果",
    }


def test_strict_send_result_refuses_tasks_over_100_recipients(client: Client) -> None:
    """Under strict limits getsendresult answers -1 Call timeout for a task of more than 100 recipients."""
    assert client.load_org(make_org("acme", users=101)).status_code == 200
    token = client.token("acme-key", "acme-secret")
    hundred = client.sent(token, agent_id=5001, userid_list=",".join(f"u{i:05d}" for i in range(100)))
    all_101 = client.sent(token, agent_id=5001, msg=text("all"), dept_id_list="1")

    ok = client.oapi(MESSAGES + "getsendresult", {"agent_id": 5001, "task_id": hundred}, token)
    refused = client.oapi(MESSAGES + "getsendresult", {"agent_id": 5001, "task_id": all_101}, token)

    assert (ok["errcode"], len(ok["send_result"]["unread_user_id_list"])) == (0, 100)
    assert without_request_id(refused) == {"errcode": -1, "errmsg": "Call timeout"}


def test_lenient_send_result_answers_tasks_over_100_recipients(start_server: Any) -> None:
    """Under lenient limits getsendresult answers for a task of more than 100 recipients."""
    c = Client(start_server("--limits", "lenient").url)
    assert c.load_org(make_org("acme", users=101)).status_code == 200
    token = c.token("acme-key", "acme-secret")
    task_id = c.sent(token, agent_id=5001, dept_id_list="1")

    result = c.result(token, task_id, agent_id=5001)

    assert result["unread_user_id_list"] == [f"u{i:05d}" for i in range(101)]


# -- recall -------------------------------------------------------------------------------------


def test_recall_only_within_24_hours(client: Client) -> None:
    """recall works until 24 h after acceptance, then answers 40035 消息已超过撤回时限."""
    client.freeze(START)
    token = client.token()
    first = client.sent(token, msg=text("one"), userid_list="alice")
    second = client.sent(token, msg=text("two"), userid_list="alice")

    client.advance(DAY)
    token = client.token()
    at_limit = client.oapi(MESSAGES + "recall", {"agent_id": DEMO_AGENT, "msg_task_id": first}, token)
    client.advance(1)
    past = client.oapi(MESSAGES + "recall", {"agent_id": DEMO_AGENT, "msg_task_id": second}, token)

    assert without_request_id(at_limit) == {"errcode": 0, "errmsg": "ok"}
    assert without_request_id(past) == {
        "errcode": 40035,
        "errmsg": "不合法的参数 msg_task_id: 消息已超过撤回时限",
    }
    assert [m["recalled"] for m in client.inbox("alice")] == [False, True]


def test_recalled_message_shows_recalled_and_cannot_be_read(client: Client) -> None:
    """A recalled message stays in the inbox marked recalled; reading it is 409 message_recalled."""
    token = client.token()
    task_id = client.sent(token, userid_list=USERS)
    message_id = message_of(client, "alice", task_id)["id"]
    query = {"agent_id": DEMO_AGENT, "msg_task_id": task_id}

    first = client.oapi(MESSAGES + "recall", query, token)
    again = client.oapi(MESSAGES + "recall", query, token)
    read = client.api("POST", f"/messages/{message_id}/read")
    task = client.task(task_id)

    assert without_request_id(first) == without_request_id(again) == {"errcode": 0, "errmsg": "ok"}
    assert message_of(client, "alice", task_id)["recalled"] is True
    assert client.api("GET", f"/messages/{message_id}").json()["recalled"] is True
    assert read.status_code == 409
    assert read.json() == {
        "error": {"code": "message_recalled", "message": "the message was recalled by its sender"}
    }
    assert [r["outcome"] for r in task["recipients"]] == ["recalled", "recalled"]
    assert task["counts"] == {"recalled": 2}


def test_recall_of_a_pending_task_recalls_its_later_deliveries(slow_client: Client) -> None:
    """Recalling a task before dispatch makes every copy it later delivers arrive recalled."""
    c = slow_client
    token = c.token("acme-key", "acme-secret")
    task_id = c.send(token, agent_id=5001, userid_list="u00000,u00001,u00002")["task_id"]
    status_at_recall = progress(c, token, task_id, 5001)["progress"]["status"]

    recall = c.oapi(MESSAGES + "recall", {"agent_id": 5001, "msg_task_id": task_id}, token)
    task = c.task(task_id, wait=15)

    assert status_at_recall == 0
    assert without_request_id(recall) == {"errcode": 0, "errmsg": "ok"}
    assert task["status"] == 2
    assert [(r["userid"], r["outcome"]) for r in task["recipients"]] == [
        ("u00000", "recalled"),
        ("u00001", "recalled"),
        ("u00002", "recalled"),
    ]
    assert [m["recalled"] for m in c.inbox("u00001", corp_id="acme")] == [True]


def test_a_recall_during_a_fan_out_recalls_every_copy(start_server: Callable[..., ServerProcess]) -> None:
    """A recall that arrives while a large fan-out is being written recalls every copy: those written
    before it and those the write in flight commits after it (on a store where the two run side by
    side, the write must not go on with the task as it read it before the recall)."""
    c = Client(start_server("--limits", "unlimited").url)
    assert c.load_org(make_org("acme", users=10_000)).status_code == 200
    token = c.token("acme-key", "acme-secret")
    counts = []
    for n, delay in enumerate((0.1, 0.2, 0.35, 0.5)):  # somewhere in the fan-out: before, during, after
        task_id = c.send(token, agent_id=5001, msg=text(f"to recall {n}"), to_all_user=True)["task_id"]
        time.sleep(delay)
        recall = c.oapi(MESSAGES + "recall", {"agent_id": 5001, "msg_task_id": task_id}, token)
        assert recall["errcode"] == 0, recall
        counts.append(c.task(task_id, wait=60, limit=1)["counts"])
    assert counts == [{"recalled": 10_000}] * 4


# -- status_bar/update --------------------------------------------------------------------------


def test_status_bar_update_changes_the_oa_message(client: Client) -> None:
    """status_bar/update replaces the status bar every recipient's OA message shows."""
    token = client.token()
    task_id = client.sent(token, msg=OA, userid_list=USERS)
    before = message_of(client, "alice", task_id)["status_bar"]

    body = client.oapi(
        MESSAGES + "status_bar/update",
        {"agent_id": DEMO_AGENT, "task_id": task_id, "status_value": "已同意", "status_bg": "0xFF78C06E"},
        token,
    )

    assert without_request_id(body) == {"errcode": 0, "errmsg": "ok"}
    assert before == {"status_value": "待审批", "status_bg": "0xFFFF9D46"}
    new_bar = {"status_value": "已同意", "status_bg": "0xFF78C06E"}
    assert message_of(client, "0356123401", task_id)["status_bar"] == new_bar
    message_id = message_of(client, "alice", task_id)["id"]
    assert client.api("GET", f"/messages/{message_id}").json()["status_bar"] == new_bar


def test_status_bar_update_only_for_oa_messages(client: Client) -> None:
    """status_bar/update on a task whose message is not OA answers 40035 naming the OA type."""
    token = client.token()
    task_id = client.sent(token, userid_list="alice")

    body = client.oapi(
        MESSAGES + "status_bar/update",
        {"agent_id": DEMO_AGENT, "task_id": task_id, "status_value": "完成"},
        token,
    )

    assert without_request_id(body) == {
        "errcode": 40035,
        "errmsg": "不合法的参数 task_id: 只有OA消息可以更新状态栏",
    }


def test_status_bar_update_only_within_7_days(client: Client) -> None:
    """status_bar/update works until 7 days after acceptance, then answers 40035 naming the 7-day window."""
    client.freeze(START)
    token = client.token()
    task_id = client.sent(token, msg=OA, userid_list="alice")
    query = {"agent_id": DEMO_AGENT, "task_id": task_id}

    client.advance(7 * DAY)
    token = client.token()
    at_limit = client.oapi(MESSAGES + "status_bar/update", {**query, "status_value": "第7天"}, token)
    client.advance(1)
    past = client.oapi(MESSAGES + "status_bar/update", {**query, "status_value": "第8天"}, token)

    assert without_request_id(at_limit) == {"errcode": 0, "errmsg": "ok"}
    assert without_request_id(past) == {
        "errcode": 40035,
        "errmsg": "不合法的参数 task_id: 只能更新7天内的消息状态栏",
    }
    assert message_of(client, "alice", task_id)["status_bar"] == {"status_value": "第7天"}


@pytest.mark.parametrize(
    ("fields", "errmsg"),
    [
        ({"status_value": "完成", "status_bg": "red"}, "不合法的参数 status_bg: 0xAARRGGBB"),
        ({"status_value": "完成", "status_bg": "FF78C06E"}, "不合法的参数 status_bg: 0xAARRGGBB"),
        ({"status_bg": "0xFF78C06E"}, "缺少参数 status_value"),
        ({"status_value": "   "}, "缺少参数 status_value"),
    ],
)
def test_status_bar_update_validates_its_fields(client: Client, fields: dict[str, Any], errmsg: str) -> None:
    """status_bg must be 0xAARRGGBB and status_value is given; else 40035, and the bar is unchanged."""
    token = client.token()
    task_id = client.sent(token, msg=OA, userid_list="alice")

    body = client.oapi(
        MESSAGES + "status_bar/update", {"agent_id": DEMO_AGENT, "task_id": task_id, **fields}, token
    )

    assert without_request_id(body) == {"errcode": 40035, "errmsg": errmsg}
    assert message_of(client, "alice", task_id)["status_bar"] == OA["oa"]["status_bar"]
