"""Department fan-out (DESIGN §3 rule 1, spec §3.1, §10 #24), checked in getsendresult, the task and inboxes.

Recipient order is `userid_list` order, then (for users reached through departments) the smallest id of the
reached departments the user belongs to, then userid; each user appears once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support import Client, ServerProcess, make_org

APP = 5001
NOON = "2026-03-01T12:00:00+08:00"

# 1 ─┬─ 2 ── 3 ── 4 ── 7
#    └─ 5 ── 6
DEPTS = [
    {"dept_id": 2, "name": "Eng", "parent_id": 1},
    {"dept_id": 3, "name": "Platform", "parent_id": 2},
    {"dept_id": 4, "name": "Storage", "parent_id": 3},
    {"dept_id": 7, "name": "Disks", "parent_id": 4},
    {"dept_id": 5, "name": "Sales", "parent_id": 1},
    {"dept_id": 6, "name": "East", "parent_id": 5},
]
PEOPLE = [
    {"userid": "zed", "name": "Zed", "dept_ids": [4]},
    {"userid": "amy", "name": "Amy", "dept_ids": [3]},
    {"userid": "bob", "name": "Bob", "dept_ids": [6, 2]},
    {"userid": "cat", "name": "Cat", "dept_ids": [6]},
    {"userid": "dan", "name": "Dan", "dept_ids": [5]},
    {"userid": "eve", "name": "Eve", "dept_ids": [7, 2]},
    {"userid": "fay", "name": "Fay", "dept_ids": [7]},
    {"userid": "ron", "name": "Ron", "dept_ids": [1]},
    {"userid": "ina", "name": "Ina", "dept_ids": [3], "active": False},
]
EVERYONE = ["ron", "bob", "eve", "amy", "ina", "zed", "dan", "cat", "fay"]


def load(c: Client, people: list[dict[str, Any]] = PEOPLE) -> str:
    doc = make_org(departments=DEPTS, extra_users=people)
    resp = c.load_org(doc)
    assert resp.status_code == 200, resp.text
    resp = c.api("PUT", "/clock", json={"now": NOON, "frozen": True})
    assert resp.status_code == 200, resp.text
    return c.token("acme-key", "acme-secret")


def send(c: Client, token: str, content: str, **fields: Any) -> int:
    body = c.send(token, {"msgtype": "text", "text": {"content": content}}, agent_id=APP, **fields)
    assert body["errcode"] == 0, body
    return int(body["task_id"])


def recipients(c: Client, task_id: int) -> list[dict[str, Any]]:
    task = c.task(task_id)
    assert task["status"] == 2, task
    return list(task["recipients"])


def order(c: Client, task_id: int) -> list[str]:
    return [r["userid"] for r in recipients(c, task_id)]


def test_nested_departments_overlap_and_order(client: Client) -> None:
    """Spec §3.1: dept sends include sub-departments at any depth; listed users first; each user once."""
    token = load(client)
    task = send(client, token, "hi", userid_list="dan,zed,ghost", dept_id_list="5,2")
    got = recipients(client, task)
    assert [(r["userid"], r["outcome"], r["reason"]) for r in got] == [
        ("dan", "delivered", None),
        ("zed", "delivered", None),
        ("ghost", "invalid", "invalid_user"),
        ("bob", "delivered", None),  # in 2 and 6: once, under department 2
        ("eve", "delivered", None),  # in 2 and 7: once, under department 2
        ("amy", "delivered", None),
        ("ina", "failed", "inactive_user"),
        ("cat", "delivered", None),
        ("fay", "delivered", None),  # four levels below department 2
    ]
    assert client.task(task)["counts"] == {"delivered": 7, "invalid": 1, "failed": 1}
    assert client.result(token, task, agent_id=APP) == {
        "invalid_user_id_list": ["ghost"],
        "forbidden_user_id_list": [],
        "failed_user_id_list": ["ina"],
        "read_user_id_list": [],
        "unread_user_id_list": ["dan", "zed", "bob", "eve", "amy", "cat", "fay"],
        "invalid_dept_id_list": [],
        "forbidden_list": [],
    }
    for r in got:
        if r["reason"] == "invalid_user":  # no such user and no messages: no inbox to read
            resp = client.api("GET", f"/corps/acme/users/{r['userid']}/messages")
            assert (resp.status_code, resp.json()["error"]["code"]) == (404, "unknown_user")
            continue
        inbox = client.inbox(r["userid"], "acme")
        if r["outcome"] == "delivered":
            assert [(m["id"], m["task_id"], m["content"]) for m in inbox] == [
                (r["message_id"], task, {"content": "hi"})
            ]
        else:
            assert inbox == []
    assert client.inbox("ron", "acme") == []


def test_department_list_order_does_not_change_recipient_order(client: Client) -> None:
    """DESIGN §3 rule 1: users reached by department are ordered by department id, then userid."""
    token = load(client)
    forward = send(client, token, "a", dept_id_list="2,5")
    backward = send(client, token, "b", dept_id_list="5,2")
    expected = ["bob", "eve", "amy", "ina", "zed", "dan", "cat", "fay"]
    assert order(client, forward) == expected
    assert order(client, backward) == expected


def test_task_recipient_pages_follow_the_same_order(client: Client) -> None:
    """DESIGN §7: the task's recipients page with limit/cursor in decision order, without gaps or repeats."""
    token = load(client)
    task = send(client, token, "a", dept_id_list="1")
    pages, cursor = [], 0
    while cursor is not None:
        page = client.task(task, limit=4, cursor=cursor)
        pages += [r["userid"] for r in page["recipients"]]
        cursor = page["next_cursor"]
    assert pages == EVERYONE


def test_to_all_user_reaches_everyone_once(client: Client) -> None:
    """Spec §3.1: to_all_user sends to the whole corp once each; the department list adds nobody."""
    token = load(client)
    task = send(client, token, "all", to_all_user=True, dept_id_list="6,2")
    got = recipients(client, task)
    assert [r["userid"] for r in got] == EVERYONE
    assert client.task(task)["counts"] == {"delivered": 8, "failed": 1}
    assert sorted(client.result(token, task, agent_id=APP)["unread_user_id_list"]) == sorted(
        set(EVERYONE) - {"ina"}
    )
    assert all(len(client.inbox(u, "acme")) == 1 for u in EVERYONE if u != "ina")


def test_root_department_is_the_whole_corp(client: Client) -> None:
    """DESIGN §6: department 1 is the implicit root; sending to it reaches every user like to_all_user."""
    token = load(client)
    assert order(client, send(client, token, "root", dept_id_list="1")) == EVERYONE


def test_listed_users_inside_listed_departments_appear_once(client: Client) -> None:
    """Spec §3.1: a user named in userid_list and also in a listed department receives the message once."""
    token = load(client)
    task = send(client, token, "x", userid_list="cat,bob", dept_id_list="6,5")
    assert order(client, task) == ["cat", "bob", "dan"]
    assert [len(client.inbox(u, "acme")) for u in ("cat", "bob", "dan")] == [1, 1, 1]


# Userids of every case and script: byte order (Python's `sorted`, SQLite's, the C collation's) puts
# digits, then upper case, then "_", then lower case, then accented letters; a collation made for
# people (en-US) would put "amy" before "Bob".
MIXED_USERIDS = ["amy", "Zoe", "_x", "émile", "0356123401", "Bob", "AMY", "amy.2"]


def test_userids_are_ordered_by_their_bytes_on_every_store(client: Client) -> None:
    """DESIGN §3 rule 1's "then userid" is the byte order of the userids, whatever collation the
    store's database has."""
    token = load(client, [{"userid": u, "name": u, "dept_ids": [5]} for u in MIXED_USERIDS])
    assert order(client, send(client, token, "bytes", dept_id_list="5")) == sorted(MIXED_USERIDS)


def test_recipients_are_resolved_when_dispatched(start_server: Callable[..., ServerProcess]) -> None:
    """DESIGN §3 Time: recipients come from the org as it is at dispatch, not at acceptance."""
    c = Client(start_server("--test-controls", "--dispatch-delay", "2.0").url)
    token = load(c)
    task = send(c, token, "moved", dept_id_list="3")
    assert c.task(task, wait=0)["status"] == 0
    moved = [p for p in PEOPLE if p["userid"] != "amy"] + [{"userid": "new", "name": "New", "dept_ids": [4]}]
    load(c, moved)
    assert [(r["userid"], r["outcome"]) for r in recipients(c, task)] == [
        ("ina", "failed"),
        ("new", "delivered"),
        ("zed", "delivered"),
        ("eve", "delivered"),  # also in 2, outside the subtree of 3: ordered under 7
        ("fay", "delivered"),
    ]
