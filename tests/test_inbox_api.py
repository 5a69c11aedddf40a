"""dingbox's own /api/v1 inbox, message and task views, and the dispatch controls (DESIGN §7)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from support import DEMO_AGENT, MESSAGES, Client, ServerProcess, api_error, make_org, store_sql, text

START = "2026-03-02T10:00:00+08:00"
REASONS = {
    "invalid_user",
    "not_visible",
    "inactive_user",
    "duplicate_content",
    "daily_cap",
    "minute_cap",
    "recipient_limit",
    "injected_failure",
    None,
}
MESSAGE_KEYS = sorted(
    "id seq corp_id userid open_conversation_id source agent_id robot_code task_id process_query_key"
    " template_id template_data msgtype content status_bar created_at read read_at recalled".split()
)
TASK_KEYS = sorted(
    "task_id corp_id agent_id source status progress_in_percent accepted_at finished_at request counts"
    " warnings invalid_dept_ids recipients next_cursor".split()
)


def page(c: Client, userid: str, **params: Any) -> dict[str, Any]:
    resp = c.api("GET", f"/corps/dingdemo/users/{userid}/messages", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# -- inbox --------------------------------------------------------------------------------------


def test_inbox_is_newest_first_and_pages_without_gaps_or_duplicates(client: Client) -> None:
    """The inbox lists newest first; limit and before/next_before walk it with no gap and no repeat."""
    client.freeze(START)
    token = client.token()
    task_ids = []
    for i in range(7):
        task_ids.append(client.sent(token, msg=text(f"m{i}"), userid_list="alice"))
        if i % 2:  # pairs share a created_at, so the tie-break on seq is exercised too
            client.advance(1)

    pages, links, before = [], [], None
    while True:
        body = page(client, "alice", limit=3, **({"before": before} if before is not None else {}))
        pages.append(body["messages"])
        links.append(before := body["next_before"])
        if before is None:
            break
    everything = page(client, "alice", limit=200)

    assert [len(p) for p in pages] == [3, 3, 1]
    walked = [m["task_id"] for p in pages for m in p]
    assert walked == [m["task_id"] for m in everything["messages"]] == task_ids[::-1]
    assert links == [pages[0][-1]["id"], pages[1][-1]["id"], None]
    assert everything["next_before"] is None
    assert sorted(everything["messages"][0]) == MESSAGE_KEYS
    assert everything["messages"][0]["content"] == {"content": "m6"}


def test_inbox_limit_is_at_most_200(client: Client) -> None:
    """The inbox's limit accepts 1 to 200; 0, 201 and non-numbers are 400 invalid_request."""
    client.sent(client.token(), userid_list="alice")

    ok = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"limit": 200})
    too_big = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"limit": 201})
    zero = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"limit": 0})
    word = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"limit": "ten"})

    assert (ok.status_code, len(ok.json()["messages"])) == (200, 1)
    assert too_big.json() == {
        "error": {"code": "invalid_request", "message": "limit must be between 1 and 200"}
    }
    assert [api_error(r) for r in (too_big, zero, word)] == [(400, "invalid_request")] * 3


def test_inbox_before_must_name_a_message(client: Client) -> None:
    """A before that names no message is 400, not a silent restart from the newest message."""
    client.sent(client.token(), userid_list="alice")

    unknown = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"before": 987654})
    huge = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"before": 10**20})

    assert unknown.status_code == 400
    assert unknown.json() == {"error": {"code": "invalid_request", "message": "before: no such message"}}
    assert api_error(huge) == (400, "invalid_request")


def test_inbox_filters_by_source_and_unread(client: Client) -> None:
    """source= keeps one kind of message and unread=true keeps the messages not yet read."""
    token = client.token()
    first = client.sent(token, msg=text("a"), userid_list="alice")
    second = client.sent(token, msg=text("b"), userid_list="alice")
    first_id = [m["id"] for m in client.inbox("alice") if m["task_id"] == first][0]
    assert client.api("POST", f"/messages/{first_id}/read").status_code == 200

    notifications = client.inbox("alice", source="work_notification")
    robots = client.inbox("alice", source="robot")
    unread = client.inbox("alice", unread="true")
    bad_source = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"source": "email"})
    bad_unread = client.api("GET", "/corps/dingdemo/users/alice/messages", params={"unread": "yes"})

    assert [m["task_id"] for m in notifications] == [second, first]
    assert robots == []
    assert [m["task_id"] for m in unread] == [second]
    assert [api_error(bad_source), api_error(bad_unread)] == [(400, "invalid_request")] * 2


def test_mark_read_is_idempotent_and_sets_read_at(client: Client) -> None:
    """POST …/read marks the message read at the virtual time once; reading again changes nothing."""
    client.freeze(START)
    task_id = client.sent(client.token(), userid_list="alice")
    message = client.inbox("alice")[0]

    first = client.api("POST", f"/messages/{message['id']}/read")
    client.advance(60)
    second = client.api("POST", f"/messages/{message['id']}/read")
    shown = client.api("GET", f"/messages/{message['id']}")

    assert (message["task_id"], message["read"], message["read_at"]) == (task_id, False, None)
    assert first.status_code == second.status_code == 200
    assert first.json()["read"] is True
    assert first.json()["read_at"] == "2026-03-02T10:00:00.000+08:00"
    assert second.json() == first.json() == shown.json()


def test_unknown_messages_are_404(client: Client) -> None:
    """GET /messages/{id} and POST /messages/{id}/read answer 404 not_found for an id that names nothing."""
    answers = [
        client.api("GET", "/messages/424242"),
        client.api("POST", "/messages/424242/read"),
        client.api("GET", "/messages/abc"),
        client.api("GET", f"/messages/{10**20}"),
        client.api("POST", f"/messages/{10**20}/read"),
    ]

    assert answers[0].json() == {"error": {"code": "not_found", "message": "no such message"}}
    assert [api_error(r) for r in answers] == [(404, "not_found")] * 5


# -- tasks --------------------------------------------------------------------------------------


def test_task_shows_each_recipients_outcome_reason_and_code(client: Client) -> None:
    """A task lists every recipient's outcome, reason (closed enum) and code, with counts and warnings."""
    token = client.token()
    client.sent(token, msg=text("dup"), userid_list="0356123401")
    task_id = client.sent(token, msg=text("dup"), userid_list=["alice", "0356123401", "carol", "ghost"])
    alice = [m for m in client.inbox("alice") if m["task_id"] == task_id][0]
    assert client.api("POST", f"/messages/{alice['id']}/read").status_code == 200
    recalled = client.sent(token, msg=text("gone"), userid_list="alice")
    assert (
        client.oapi(MESSAGES + "recall", {"agent_id": DEMO_AGENT, "msg_task_id": recalled}, token)["errcode"]
        == 0
    )

    task = client.task(task_id)
    gone = client.task(recalled)

    assert sorted(task) == TASK_KEYS
    assert (task["task_id"], task["corp_id"], task["agent_id"]) == (task_id, "dingdemo", DEMO_AGENT)
    assert (task["source"], task["status"], task["progress_in_percent"]) == ("work_notification", 2, 100)
    assert task["recipients"] == [
        {"userid": "alice", "outcome": "read", "reason": None, "code": None, "message_id": alice["id"]},
        {
            "userid": "0356123401",
            "outcome": "forbidden",
            "reason": "duplicate_content",
            "code": "143106",
            "message_id": None,
        },
        {"userid": "carol", "outcome": "failed", "reason": "inactive_user", "code": None, "message_id": None},
        {"userid": "ghost", "outcome": "invalid", "reason": "invalid_user", "code": None, "message_id": None},
    ]
    assert task["counts"] == {"read": 1, "forbidden": 1, "failed": 1, "invalid": 1}
    assert task["warnings"] == ["userid_list was a JSON array; DingTalk documents a comma-separated string"]
    assert (task["invalid_dept_ids"], task["next_cursor"]) == ([], None)
    assert {r["reason"] for r in task["recipients"] + gone["recipients"]} <= REASONS
    assert [(r["outcome"], r["reason"]) for r in gone["recipients"]] == [("recalled", None)]
    assert gone["counts"] == {"recalled": 1}
    delivered = client.sent(token, msg=text("plain"), userid_list="alice")
    assert [r["outcome"] for r in client.task(delivered)["recipients"]] == ["delivered"]


def test_task_request_is_kept_without_the_token(client: Client, server: ServerProcess) -> None:
    """The task keeps the request as received, minus access_token, even when the token came in a form body."""
    token = client.token()
    form = {
        "access_token": token,
        "agent_id": str(DEMO_AGENT),
        "userid_list": "alice",
        "msg": '{"msgtype":"text","text":{"content":"form"}}',
    }
    body = requests.post(client.base + MESSAGES + "asyncsend_v2", data=form).json()
    assert body["errcode"] == 0, body

    task = client.task(body["task_id"])
    stored = [request for (request,) in store_sql(server.db, "SELECT request FROM tasks") if token in request]

    assert task["request"] == {k: v for k, v in form.items() if k != "access_token"}
    assert stored == []


def test_task_recipients_page_with_cursor_and_limit(client: Client) -> None:
    """limit and cursor page a task's recipients in order; next_cursor is null on the last page."""
    assert client.load_org(make_org("acme", users=5)).status_code == 200
    token = client.token("acme-key", "acme-secret")
    task_id = client.sent(token, agent_id=5001, dept_id_list="1")

    pages, cursor = [], None
    while True:
        body = client.task(task_id, limit=2, **({"cursor": cursor} if cursor is not None else {}))
        pages.append([r["userid"] for r in body["recipients"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert pages == [["u00000", "u00001"], ["u00002", "u00003"], ["u00004"]]
    assert client.task(task_id, limit=2)["counts"] == {"delivered": 5}


def test_task_wait_returns_when_finished_and_drain_when_nothing_is_pending(start_server: Any) -> None:
    """?wait=S returns as soon as the task is finished (or after S); drain returns once nothing is pending."""
    c = Client(start_server("--dispatch-delay", "1").url)
    token = c.token()
    task_id = c.send(token, userid_list="alice")["task_id"]

    t0 = time.monotonic()
    short = c.task(task_id, wait=0.3)
    short_took = time.monotonic() - t0
    full = c.task(task_id, wait=20)
    full_took = time.monotonic() - t0
    later = c.send(token, msg=text("later"), userid_list="alice")["task_id"]
    drained = c.api("POST", "/dispatch/drain", params={"timeout": 20})
    health = c.api("GET", "/health").json()

    assert (short["status"], short["progress_in_percent"]) == (0, 0)
    assert 0.3 <= short_took < 1.0
    assert (full["status"], full["progress_in_percent"]) == (2, 100)
    assert full_took < 3.0
    assert (drained.status_code, drained.json()) == (200, {"pending_tasks": 0})
    assert health["pending_tasks"] == 0
    assert c.task(later, wait=0)["status"] == 2


def test_unknown_tasks_are_404(client: Client) -> None:
    """GET /tasks/{id} answers 404 not_found for an id that names no task, however it is spelled."""
    answers = [client.api("GET", f"/tasks/{t}") for t in (123456789, "abc", 10**20, "-5")]

    assert answers[0].json() == {"error": {"code": "not_found", "message": "no such task"}}
    assert [api_error(r) for r in answers] == [(404, "not_found")] * 4


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "allow"),
    [
        ("GET", "/nope", 404, "not_found", None),
        ("POST", "/tasks/1/cancel", 404, "not_found", None),
        ("DELETE", "/tasks/1", 405, "method_not_allowed", "GET, HEAD"),
        ("GET", "/messages/1/read", 405, "method_not_allowed", "POST"),
        ("GET", "/dispatch/drain", 405, "method_not_allowed", "POST"),
        ("POST", "/corps/dingdemo/users/alice/messages", 405, "method_not_allowed", "GET, HEAD"),
    ],
)
def test_unknown_api_paths_and_wrong_verbs_are_json_errors(
    client: Client, method: str, path: str, status: int, code: str, allow: str | None
) -> None:
    """Unknown /api/v1 paths answer 404 and wrong verbs 405 with an Allow header, both as JSON errors."""
    resp = client.api(method, path)

    assert resp.headers["content-type"] == "application/json"
    assert api_error(resp) == (status, code)
    allowed = resp.headers.get("allow")
    assert (None if allowed is None else set(allowed.split(", "))) == (
        None if allow is None else set(allow.split(", "))
    )
