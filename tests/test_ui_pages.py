"""The web UI over plain HTTP: pages, security headers, reading only through a CSRF-checked POST, the
reasons a task shows, quotas, org, search, and GET /api/v1/events."""

from __future__ import annotations

import copy
import re
import socket
import threading
import time
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import requests

from conftest import DEMO_ORG
from support import MESSAGES, Client, make_org, text

START = "2026-03-02T10:00:00+08:00"


def ui(c: Client, path: str, **params: Any) -> requests.Response:
    return c.http.get(f"{c.base}/ui{path}", params=params)


def csrf(c: Client) -> str:
    """The token a page embeds; the session keeps the cookie it goes with."""
    resp = ui(c, "/")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', resp.text)
    assert match, resp.text[:500]
    return match.group(1)


def message_ids(c: Client, userid: str) -> list[int]:
    return [m["id"] for m in c.inbox(userid)]


def test_pages_answer_with_a_policy_that_forbids_inline_script(client: Client) -> None:
    token = client.token()
    task_id = client.sent(token, msg=text("hello"), userid_list="alice")
    mid = message_ids(client, "alice")[0]
    for path in (
        "/",
        "/corps/dingdemo/users/alice",
        f"/messages/{mid}",
        f"/tasks/{task_id}",
        "/corps/dingdemo/quota",
        "/corps/dingdemo/org",
        "/search",
    ):
        resp = ui(client, path)
        assert resp.status_code == 200, (path, resp.text[:300])
        assert resp.headers["content-type"].startswith("text/html")
        policy = resp.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("style-src-attr")[0]
        assert "img-src 'self' data:;" in policy  # nothing from elsewhere unless remote images are asked for
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=\"/ui/static/)", resp.text), path
        assert not re.search(r"<[^>]+\son[a-z]+=", resp.text), path


def test_unknown_things_are_404_pages(client: Client) -> None:
    for path in ("/corps/dingdemo/users/nobody", "/corps/nocorp/users/alice", "/messages/1", "/tasks/12"):
        resp = ui(client, path)
        assert resp.status_code == 404, path
        assert "<h1>404</h1>" in resp.text
    for live in ("/live/inbox?corp_id=dingdemo&userid=nobody", "/live/message?id=1", "/live/task?task_id=x"):
        assert client.http.get(f"{client.base}/ui{live}", timeout=5).status_code == 204, live


def test_opening_a_message_does_not_read_it_only_a_post_with_the_token_does(client: Client) -> None:
    token = client.token()
    task_id = client.sent(token, msg=text("read me"), userid_list="alice")
    mid = message_ids(client, "alice")[0]

    assert ui(client, f"/messages/{mid}").status_code == 200
    assert client.inbox("alice")[0]["read"] is False
    assert client.result(token, task_id)["unread_user_id_list"] == ["alice"]

    url = f"{client.base}/ui/messages/{mid}/read"
    stranger = requests.Session()
    assert stranger.post(url).status_code == 403  # no cookie, no token
    good = csrf(client)
    assert client.http.post(url, headers={"X-CSRF-Token": "x" + good[1:]}).status_code == 403
    assert stranger.post(url, headers={"X-CSRF-Token": good}).status_code == 403  # token without cookie
    assert client.http.get(url).status_code == 405
    assert client.inbox("alice")[0]["read"] is False

    resp = client.http.post(url, headers={"X-CSRF-Token": good})
    assert resp.status_code == 200, resp.text
    assert resp.json()["read"] is True
    result = client.result(token, task_id)
    assert result["read_user_id_list"] == ["alice"] and result["unread_user_id_list"] == []


def test_the_no_script_form_reads_and_returns_to_the_message(client: Client) -> None:
    client.sent(client.token(), msg=text("form"), userid_list="alice")
    mid = message_ids(client, "alice")[0]
    page = ui(client, f"/messages/{mid}").text
    field = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert field
    resp = client.http.post(
        f"{client.base}/ui/messages/{mid}/read", data={"csrf_token": field.group(1)}, allow_redirects=False
    )
    assert (resp.status_code, resp.headers["location"]) == (303, f"/ui/messages/{mid}")
    assert client.inbox("alice")[0]["read"] is True
    assert 'id="read-form"' not in ui(client, f"/messages/{mid}").text


def test_a_recalled_message_shows_as_recalled_and_cannot_be_read(client: Client) -> None:
    token = client.token()
    task_id = client.sent(token, msg=text("oops, wrong group"), userid_list="alice")
    mid = message_ids(client, "alice")[0]
    body = client.oapi(MESSAGES + "recall", {"agent_id": 1001, "msg_task_id": task_id}, token)
    assert body["errcode"] == 0, body
    page = ui(client, "/corps/dingdemo/users/alice").text
    assert "This message was recalled by its sender." in page and "oops, wrong group" not in page
    resp = client.http.post(f"{client.base}/ui/messages/{mid}/read", headers={"X-CSRF-Token": csrf(client)})
    assert resp.status_code == 409


def test_inbox_groups_by_sending_app_newest_first_unread_marked_and_paged(client: Client) -> None:
    client.freeze(START)
    token, isv = client.token(), client.isv_token()
    for i in range(3):
        client.sent(token, msg=text(f"ops {i}"), userid_list="alice")
        client.advance(1)
    client.sent(isv, msg=text("partner 0"), userid_list="alice", agent_id=2001)
    html = ui(client, "/corps/dingdemo/users/alice").text
    order = [html.index(f"{t}</div>") for t in ("partner 0", "ops 2", "ops 1", "ops 0")]
    assert order == sorted(order)
    chats = re.findall(r'class="chat-name">([^<]+)<small>([^<]+)</small>', html)
    assert chats == [("Partner", "Work notification · 1"), ("Ops", "Work notification · 3")]
    assert html.count('class="item unread"') == 4

    only_ops = ui(client, "/corps/dingdemo/users/alice", chat="app:1001").text
    assert "partner 0" not in only_ops and only_ops.count('class="item unread"') == 3

    for i in range(3, 35):
        client.send(token, msg=text(f"ops {i}"), userid_list="alice")
    client.drain()
    first = ui(client, "/corps/dingdemo/users/alice", chat="app:1001").text
    assert first.count('<article class="item') == 30
    older = re.search(r'class="older" href="\?([^"]+)"', first)
    assert older
    rest = client.http.get(
        f"{client.base}/ui/corps/dingdemo/users/alice?{older.group(1).replace('&amp;', '&')}"
    )
    assert rest.text.count('<article class="item') == 5
    assert "ops 0</div>" in rest.text and "ops 34</div>" not in rest.text


def test_task_page_says_why_each_recipient_was_not_delivered(client: Client) -> None:
    doc = copy.deepcopy(DEMO_ORG)
    doc["corps"][0]["apps"][0]["limits"] = {"daily_per_user": 1}
    assert client.load_org(doc).status_code == 200
    token = client.token()
    client.sent(token, msg=text("first"), userid_list="alice")
    task_id = client.sent(token, msg=text("second"), userid_list="alice,carol,nobody,0356123401")
    html = ui(client, f"/tasks/{task_id}").text
    assert "The app's daily cap per user was reached: count 1 (rule 6, code 143105)" in html
    assert "The user has not activated DingTalk (rule 4)" in html
    assert "No such user in the corp (pipeline rule 2)" in html
    result = client.result(token, task_id)
    shown = re.search(r'<pre class="json" id="getsendresult">(.*?)</pre>', html, re.S)
    assert shown
    shown_json = orjson.loads(unescape(shown.group(1)))
    assert shown_json == {"errcode": 0, "errmsg": "ok", "send_result": result}

    forbidden_only = ui(client, f"/tasks/{task_id}", outcome="forbidden").text
    rows = re.findall(r'<tr class="outcome-(\w+)" data-userid="([^"]+)"', forbidden_only)
    assert rows == [("forbidden", "alice")]


def test_task_page_filters_over_every_recipient_not_only_the_first_page(client: Client) -> None:
    """A filter pages over the recipients that match: the 300 forbidden ones of a 1,500-recipient task
    sit past the first 1,000 recipients the page shows, and are all there."""
    org = make_org(users=1500)
    org["corps"][0]["apps"][0]["limits"] = {"per_call": 1200}
    assert client.load_org(org).status_code == 200
    token = client.token("acme-key", "acme-secret")
    task_id = client.sent(token, msg=text("everyone"), to_all_user=True, agent_id=5001)
    html = ui(client, f"/tasks/{task_id}", outcome="forbidden").text
    rows = re.findall(r'<tr class="outcome-(\w+)" data-userid="([^"]+)"', html)
    assert rows == [("forbidden", f"u{n:05d}") for n in range(1200, 1500)]
    assert (
        re.findall(r'<tr class="outcome-(\w+)"', ui(client, f"/tasks/{task_id}", outcome="nonsense").text)
        == []
    )


def test_task_page_shows_getsendresult_errors_as_the_app_would_get_them(client: Client) -> None:
    assert client.load_org(make_org(users=101)).status_code == 200
    token = client.token("acme-key", "acme-secret")
    task_id = client.sent(token, msg=text("everyone"), dept_id_list="1", agent_id=5001)
    html = ui(client, f"/tasks/{task_id}").text
    shown = re.search(r'<pre class="json" id="getsendresult">(.*?)</pre>', html, re.S)
    assert shown and orjson.loads(unescape(shown.group(1))) == {"errcode": -1, "errmsg": "Call timeout"}
    body = client.oapi(MESSAGES + "getsendresult", {"agent_id": 5001, "task_id": task_id}, token)
    assert (body["errcode"], body["errmsg"]) == (-1, "Call timeout")


def test_quota_page_shows_todays_counts_against_the_caps_and_spent_contents(client: Client) -> None:
    client.freeze(START)
    doc = copy.deepcopy(DEMO_ORG)
    doc["corps"][0]["apps"][0]["limits"] = {"daily_per_user": 2, "per_minute": 3}
    assert client.load_org(doc).status_code == 200
    token = client.token()
    client.sent(token, msg=text("one"), userid_list="alice,0356123401")
    client.sent(token, msg=text("two"), userid_list="alice")
    html = ui(client, "/corps/dingdemo/quota", agent_id=1001).text
    alice = re.search(r'data-userid="alice">(.*?)</tr>', html, re.S)
    bob = re.search(r'data-userid="0356123401">(.*?)</tr>', html, re.S)
    assert alice and bob
    assert "<td data-today>2</td>" in alice.group(1) and "forbidden: 143105 daily cap" in alice.group(1)
    assert "<td data-today>1</td>" in bob.group(1) and "allowed (1 left)" in bob.group(1)
    assert "<strong data-minute-used>3</strong> of 3 recipients" in html and "forbidden: 143103" in html
    assert html.count('class="spent"') == 2 and "held by 2" in html and "held by 1" in html

    client.advance(60)  # a new minute: its budget is back, the day's is not
    html = ui(client, "/corps/dingdemo/quota", agent_id=1001).text
    assert "<strong data-minute-used>0</strong> of 3 recipients" in html
    assert "forbidden: 143105 daily cap" in html
    client.advance(86400)  # the next DingTalk day
    html = ui(client, "/corps/dingdemo/quota", agent_id=1001).text
    assert "forbidden" not in html.split("Contents spent today")[0].split("per user")[1]
    assert "Nothing sent today." in html


def test_org_page_shows_the_tree_inactive_users_and_visible_ranges(client: Client) -> None:
    html = ui(client, "/corps/dingdemo/org").text
    assert html.index("Engineering") < html.index("Platform")
    assert re.search(r'<li class="inactive"><a href="/ui/corps/dingdemo/users/carol">Carol</a>', html)
    assert "visible to the whole corp" in html
    assert re.search(r"visible to\s+departments <span class=\"tag\">Engineering</span>", html)


def test_home_lists_corps_tasks_with_outcome_counts_and_unread_counts(client: Client) -> None:
    token = client.token()
    task_id = client.sent(token, msg=text("hi"), userid_list="alice,carol,nobody")
    html = ui(client, "/").text
    assert f'href="/ui/tasks/{task_id}"' in html
    for chip in ("delivered 1", "failed 1", "invalid 1"):
        assert chip in html
    assert "Ops Bot" in html and "tpl-welcome" in html
    alice = re.search(r'href="/ui/corps/dingdemo/users/alice">.*?</li>', html, re.S)
    assert alice and '<span class="badge" title="unread">1</span>' in alice.group(0)


def test_search_by_text_sender_type_day_and_recipient(client: Client) -> None:
    client.freeze(START)
    token, isv = client.token(), client.isv_token()
    client.sent(token, msg=text("deploy finished"), userid_list="alice,0356123401")
    client.sent(
        token,
        msg={"msgtype": "markdown", "markdown": {"title": "周报", "text": "**本周** 100%_done"}},
        userid_list="alice",
    )
    client.sent(isv, msg=text("partner deploy"), userid_list="alice", agent_id=2001)

    def found(**params: Any) -> list[tuple[str, str]]:
        html = ui(client, "/search", **params).text
        return re.findall(r'users/([^"]+)">[^<]+</a></td><td>([^<]+)</td>', html)

    assert found(q="deploy") == [("alice", "Partner"), ("0356123401", "Ops"), ("alice", "Ops")]
    assert found(q="DEPLOY") == found(q="Deploy") == found(q="deploy")  # ASCII letters in any case
    assert found(q="deploy", sender="1001") == [("0356123401", "Ops"), ("alice", "Ops")]
    assert found(q="deploy", sender="partner") == [("alice", "Partner")]
    assert found(sender="Ops Bot") == [] and found(sender="nonesuch") == []
    assert found(q="deploy", userid="0356123401") == [("0356123401", "Ops")]
    assert found(msgtype="markdown") == [("alice", "Ops")]
    assert found(q="本周") == [("alice", "Ops")]
    assert found(q="100%_") == [("alice", "Ops")]  # LIKE wildcards are literal
    assert len(found(day="2026-03-02")) == 4
    assert found(day="2026-03-03") == []
    assert "give a date as YYYY-MM-DD" in ui(client, "/search", day="March").text
    assert found(sender="9" * 30) == []


def test_odd_queries_get_pages_not_errors(client: Client) -> None:
    huge = "9" * 30
    for path, params in [
        ("/corps/dingdemo/users/alice", {"chat": f"app:{huge}", "before": huge}),
        ("/corps/dingdemo/users/alice", {"chat": "robot:", "before": "abc"}),
        ("/corps/dingdemo/quota", {"agent_id": huge}),
        ("/search", {"sender": huge, "day": "0000-01-01", "msgtype": "';drop"}),
        ("/search", {"q": "%_\\"}),
    ]:
        assert ui(client, path, **params).status_code == 200, (path, params)
    assert ui(client, f"/tasks/{huge}").status_code == 404


# -- GET /api/v1/events ------------------------------------------------------------------------------


class Stream:
    """A server-sent-event stream read on a thread: `events` fills as they arrive. A raw socket, so
    closing it is immediate (HTTP/1.0: the body comes unchunked)."""

    def __init__(self, base: str, path: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.status = self.file.readline().decode()
        self.headers: dict[str, str] = {}
        while (line := self.file.readline().decode().strip()) != "":
            key, _, value = line.partition(":")
            self.headers[key.lower()] = value.strip()
        self.events: list[tuple[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name = None
        try:
            for raw in self.file:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    self.events.append((name, orjson.loads(line[6:])))
        except (OSError, ValueError):
            pass

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.events)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def stream(client: Client) -> Iterator[Any]:
    opened: list[Stream] = []

    def open_stream(**params: Any) -> Stream:
        s = Stream(client.base, "/api/v1/events?" + urlencode(params))
        assert " 200 " in s.status and s.headers["content-type"].startswith("text/event-stream")
        assert s.wait(1)[0][0] == "ready"
        opened.append(s)
        return s

    yield open_stream
    for s in opened:
        s.close()


def test_events_stream_the_bus_filtered_by_corp_and_kind(client: Client, stream: Any) -> None:
    everything = stream()
    reads = stream(kind="message.read", corp_id="dingdemo")
    other_corp = stream(corp_id="acme")
    token = client.token()
    task_id = client.sent(token, msg=text("watch"), userid_list="alice")
    mid = message_ids(client, "alice")[0]
    assert client.api("POST", f"/messages/{mid}/read").status_code == 200

    kinds = [name for name, _ in everything.wait(4)]
    assert kinds[0] == "ready" and "task.accepted" in kinds and "task.finished" in kinds
    read_events = reads.wait(2)
    assert read_events[1] == (
        "message.read",
        {
            "kind": "message.read",
            "corp_id": "dingdemo",
            "message_id": mid,
            "task_id": task_id,
            "userid": "alice",
        },
    )
    assert [name for name, _ in read_events] == ["ready", "message.read"]
    assert [name for name, _ in other_corp.wait(2, timeout=0.5)] == ["ready"]


def test_events_families_and_unknown_kinds(client: Client, stream: Any) -> None:
    tasks = stream(kind="task.*")
    assert tasks.events[0][1]["kinds"] == ["task.accepted", "task.finished", "task.progress"]
    resp = client.api("GET", "/events", params={"kind": "message.sent"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"


def test_an_event_stream_ends_with_its_client(client: Client) -> None:
    def subscribers() -> int:
        found = re.search(
            r"^dingbox_event_subscribers (\d+)$", client.http.get(client.base + "/metrics").text, re.M
        )
        assert found
        return int(found.group(1))

    port = int(client.base.rsplit(":", 1)[1])
    base = subscribers()  # the server's own (a dispatcher on a shared store listens for accepts)
    for path in ("/api/v1/events", "/ui/live/inbox?corp_id=dingdemo&userid=alice", "/ui/live/home"):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while subscribers() != base + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert subscribers() == base + 1, path
        sock.close()
        deadline = time.monotonic() + 5
        while subscribers() != base and time.monotonic() < deadline:
            time.sleep(0.05)
        assert subscribers() == base, f"{path}: the stream outlived its client"


def test_inbox_streams_patch_the_first_page_and_leave_older_pages_alone(client: Client) -> None:
    token = client.token()
    client.sent(token, msg=text("old"), userid_list="alice")
    old_id = message_ids(client, "alice")[0]
    base = "/ui/live/inbox?corp_id=dingdemo&userid=alice"
    first = Stream(client.base, f"{base}&after={old_id}")
    older = Stream(client.base, f"{base}&after={old_id}&older=1")
    other_chat = Stream(client.base, f"{base}&after={old_id}&chat=robot:dingdemobot")
    try:
        for s in (first, older, other_chat):
            assert s.wait(1)[0][0] == "ready"
        client.sent(token, msg=text("<b>new</b>"), userid_list="alice")
        new_id = message_ids(client, "alice")[0]
        name, patch = first.wait(2)[1]
        assert name == "patch"
        ops = {(op["op"], op["sel"]) for op in patch["ops"]}
        assert ops == {("prepend", f"#m-{new_id}"), ("replace", "#chats")}
        item = next(op["html"] for op in patch["ops"] if op["op"] == "prepend")
        assert "&lt;b&gt;new&lt;/b&gt;" in item and 'class="item unread"' in item

        assert client.api("POST", f"/messages/{old_id}/read").status_code == 200
        name, patch = older.wait(2)[-1]
        assert [(op["op"], op["sel"]) for op in patch["ops"]][0] == ("replace", f"#m-{old_id}")
        assert all(op["op"] != "prepend" for _, p in older.events[1:] for op in p["ops"])
        assert 'class="state read"' in patch["ops"][0]["html"]
        assert not any(
            op["op"] == "prepend" for _, p in other_chat.wait(3, timeout=0.5)[1:] for op in p["ops"]
        )
    finally:
        for s in (first, older, other_chat):
            s.close()
