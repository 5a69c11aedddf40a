"""Browsing /api/v1: a corp's users with unread counts, its departments, recent tasks, and inboxes of
userids that do not exist (DESIGN §7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support import DEMO_AGENT, MESSAGES, Client, ServerProcess, api_error, make_org, text

TASK_KEYS = sorted(
    "task_id corp_id agent_id source status progress_in_percent accepted_at finished_at request counts"
    " warnings invalid_dept_ids".split()
)


def get(c: Client, path: str, **params: Any) -> dict[str, Any]:
    resp = c.api("GET", path, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def app(agent_id: int) -> list[dict[str, Any]]:
    """An internal app whose key is `key-<agent_id>` (global ids: each corp of the module needs its own)."""
    key = f"key-{agent_id}"
    return [{"agent_id": agent_id, "name": key, "type": "internal", "app_key": key, "app_secret": "s"}]


def unread(c: Client, corp_id: str = "dingdemo") -> dict[str, int]:
    return {u["userid"]: u["unread"] for u in get(c, f"/corps/{corp_id}/users")["users"]}


# -- users --------------------------------------------------------------------------------------


def test_users_list_the_org_with_optional_fields_only_when_set(client: Client) -> None:
    """The demo corp's users in userid order, with departments, activity, and set contact fields only."""
    body = get(client, "/corps/dingdemo/users")
    assert body == {
        "users": [
            {
                "userid": "0356123401",
                "name": "Bob",
                "dept_ids": [3],
                "active": True,
                "mobile": "13800000001",
                "unread": 0,
            },
            {"userid": "alice", "name": "Alice", "dept_ids": [2], "active": True, "unread": 0},
            {"userid": "carol", "name": "Carol", "dept_ids": [3], "active": False, "unread": 0},
        ],
        "next_after": None,
    }


def test_unread_counts_follow_delivery_reading_and_recall(client: Client) -> None:
    """unread counts delivered messages neither read nor recalled; undelivered recipients count none."""
    token = client.token()
    client.sent(token, msg=text("one"), userid_list="alice,0356123401")
    client.sent(token, msg=text("two"), dept_id_list="2")  # alice, Bob, carol (department 3 is below 2)
    recalled = client.sent(token, msg=text("three"), userid_list="alice")
    assert unread(client) == {"0356123401": 2, "alice": 3, "carol": 0}  # carol is inactive: failed

    first = client.inbox("alice")[-1]
    assert client.api("POST", f"/messages/{first['id']}/read").status_code == 200
    body = client.oapi(MESSAGES + "recall", {"agent_id": DEMO_AGENT, "msg_task_id": recalled}, token)
    assert body["errcode"] == 0, body
    assert unread(client) == {"0356123401": 2, "alice": 1, "carol": 0}
    # the list's counts (from counters where they suffice) are the detail's (from the recipients)
    listed = {t["task_id"]: t["counts"] for t in get(client, "/tasks")["tasks"]}
    assert listed == {task_id: client.task(task_id)["counts"] for task_id in listed}
    assert list(listed.values()) == [
        {"recalled": 1},
        {"delivered": 2, "failed": 1},  # carol is in department 3, below 2
        {"delivered": 1, "read": 1},
    ]


def test_users_page_by_userid_without_gaps_or_repeats(client: Client) -> None:
    """limit and after/next_after walk a corp in userid order; each user once; the last page ends it."""
    doc = make_org("pagers", users=25, apps=[])
    doc["corps"][0]["users"].append(
        {"userid": "zz", "name": "Zed", "dept_ids": [1], "title": "CTO", "email": "z@example.com"}
    )
    assert client.load_org(doc).status_code == 200
    seen, links, after = [], [], ""
    while True:
        body = get(client, "/corps/pagers/users", limit=10, after=after)
        seen.append([u["userid"] for u in body["users"]])
        links.append(after := body["next_after"])
        if after is None:
            break
    assert [len(p) for p in seen] == [10, 10, 6]
    walked = [u for p in seen for u in p]
    assert walked == sorted(walked) == [f"u{i:05d}" for i in range(25)] + ["zz"]
    assert links == [seen[0][-1], seen[1][-1], None]
    everyone = get(client, "/corps/pagers/users", limit=1000)
    assert [u["userid"] for u in everyone["users"]] == walked and everyone["next_after"] is None
    assert everyone["users"][-1] == {
        "userid": "zz",
        "name": "Zed",
        "dept_ids": [1],
        "active": True,
        "title": "CTO",
        "email": "z@example.com",
        "unread": 0,
    }
    # an `after` that is no user still says where in the order to start
    assert [u["userid"] for u in get(client, "/corps/pagers/users", after="u00023x")["users"]] == [
        "u00024",
        "zz",
    ]
    assert get(client, "/corps/pagers/users", after="zz") == {"users": [], "next_after": None}


def test_users_page_in_byte_order_of_userids_with_their_unread_counts(client: Client) -> None:
    """Pages of users follow the userids' bytes (upper case before lower, as SQLite compares them) on
    every store, and each page's unread counts fall on its own users."""
    mixed = ["amy", "Zoe", "_x", "émile", "0356123401", "Bob", "AMY", "amy.2"]
    users = [{"userid": u, "name": u, "dept_ids": [1]} for u in mixed]
    assert client.load_org(make_org("cases", extra_users=users, apps=app(5003))).status_code == 200
    client.sent(client.token("key-5003", "s"), agent_id=5003, userid_list=",".join(mixed[:5]))
    walked: list[tuple[str, int]] = []
    after = ""
    while after is not None:
        body = get(client, "/corps/cases/users", limit=3, after=after)
        walked += [(u["userid"], u["unread"]) for u in body["users"]]
        after = body["next_after"]
    assert walked == [(u, int(u in mixed[:5])) for u in sorted(mixed)]


def test_users_of_an_empty_corp_and_bad_arguments(client: Client) -> None:
    """A corp without users lists none; limit outside 1–1000 is 400; an unknown corp is 404."""
    assert client.load_org(make_org("hollow", apps=[])).status_code == 200
    assert get(client, "/corps/hollow/users") == {"users": [], "next_after": None}
    path = "/corps/dingdemo/users"
    assert [api_error(client.api("GET", path, params={"limit": bad})) for bad in (0, 1001, "ten")] == [
        (400, "invalid_request")
    ] * 3
    assert len(get(client, path, limit=1000)["users"]) == 3
    assert api_error(client.api("GET", "/corps/nope/users")) == (404, "unknown_corp")


def test_unread_counts_skip_inboxes_of_users_no_longer_in_the_org(client: Client) -> None:
    """A userid between two listed users that left the org keeps its messages but is not listed."""
    users = [{"userid": u, "name": u, "dept_ids": [1]} for u in ("a1", "b1", "c1")]
    doc = make_org("shrink", extra_users=users, apps=app(5002))
    assert client.load_org(doc).status_code == 200
    client.sent(client.token("key-5002", "s"), agent_id=5002, userid_list="a1,b1,c1")
    doc["corps"][0]["users"] = [users[0], users[2]]
    assert client.load_org(doc).status_code == 200
    assert unread(client, "shrink") == {"a1": 1, "c1": 1}
    assert [m["userid"] for m in client.inbox("b1", "shrink")] == ["b1"]  # its inbox is still there


# -- departments --------------------------------------------------------------------------------


def test_departments_come_flat_in_tree_order_with_member_counts(client: Client) -> None:
    """Each department follows its parent, siblings by dept_id; member_count counts direct members."""
    doc = make_org(
        "treeco",
        departments=[
            {"dept_id": 7, "name": "Sales", "parent_id": 1},
            {"dept_id": 2, "name": "Eng", "parent_id": 1},
            {"dept_id": 9, "name": "Infra", "parent_id": 2},
            {"dept_id": 4, "name": "Apps", "parent_id": 2},
            {"dept_id": 5, "name": "Mobile", "parent_id": 4},
        ],
        extra_users=[
            {"userid": "ann", "name": "Ann", "dept_ids": [4, 9]},
            {"userid": "ben", "name": "Ben", "dept_ids": [4]},
            {"userid": "cy", "name": "Cy", "dept_ids": [1]},
        ],
        apps=[],
    )
    assert client.load_org(doc).status_code == 200
    body = get(client, "/corps/treeco/departments")
    assert [tuple(d.values()) for d in body["departments"]] == [
        (1, "Treeco", None, 0, 1),
        (2, "Eng", 1, 1, 0),
        (4, "Apps", 2, 2, 2),
        (5, "Mobile", 4, 3, 0),
        (9, "Infra", 2, 2, 1),
        (7, "Sales", 1, 1, 0),
    ]
    assert list(body["departments"][0]) == ["dept_id", "name", "parent_id", "depth", "member_count"]
    assert api_error(client.api("GET", "/corps/nope/departments")) == (404, "unknown_corp")


# -- tasks --------------------------------------------------------------------------------------


def test_tasks_newest_first_filtered_and_paged(client: Client) -> None:
    """Tasks of every app, newest first; corp_id, agent_id, source and status filters combine; before
    and next_before walk the list; each item is the Task without its recipients."""
    assert client.load_org(make_org("other", users=2, apps=app(5001))).status_code == 200
    demo, other = client.token(), client.token("key-5001", "s")
    ours = [client.sent(demo, msg=text(f"d{i}"), userid_list="alice,ghost") for i in range(3)]
    theirs = client.sent(other, agent_id=5001, to_all_user="true")
    ours.append(client.sent(demo, msg=text("d3"), userid_list="alice"))

    everything = get(client, "/tasks")
    assert [t["task_id"] for t in everything["tasks"]] == [ours[3], theirs, ours[2], ours[1], ours[0]]
    assert everything["next_before"] is None
    first = everything["tasks"][-1]
    assert sorted(first) == TASK_KEYS
    assert first["counts"] == {"delivered": 1, "invalid": 1}
    assert (first["corp_id"], first["agent_id"], first["status"]) == ("dingdemo", DEMO_AGENT, 2)
    assert first["request"]["userid_list"] == "alice,ghost"

    def ids(**params: Any) -> list[int]:
        return [t["task_id"] for t in get(client, "/tasks", **params)["tasks"]]

    assert ids(corp_id="other") == ids(agent_id=5001) == [theirs]
    assert ids(corp_id="dingdemo", agent_id=DEMO_AGENT, source="work_notification") == ours[::-1]
    assert ids(corp_id="other", agent_id=DEMO_AGENT) == ids(source="template") == ids(status=0) == []
    assert ids(status=2) == [ours[3], theirs, ours[2], ours[1], ours[0]]

    pages, before = [], None
    while True:
        body = get(client, "/tasks", limit=2, **({"before": before} if before is not None else {}))
        pages.append([t["task_id"] for t in body["tasks"]])
        if (before := body["next_before"]) is None:
            break
        assert before == pages[-1][-1]
    assert pages == [[ours[3], theirs], [ours[2], ours[1]], [ours[0]]]
    assert ids(agent_id=DEMO_AGENT, before=ours[2]) == [ours[1], ours[0]]


def test_tasks_bad_arguments(client: Client) -> None:
    """Filters and paging outside their values are 400 invalid_request; a `before` naming no task too."""
    bad = [
        {"limit": 0},
        {"limit": 201},
        {"status": 3},
        {"status": "done"},
        {"agent_id": "x"},
        {"source": "email"},
        {"before": 12345},
    ]
    assert [api_error(client.api("GET", "/tasks", params=p)) for p in bad] == [(400, "invalid_request")] * 7
    assert get(client, "/tasks", limit=200) == {"tasks": [], "next_before": None}


def test_tasks_status_filter_sees_pending_tasks(start_server: Callable[..., ServerProcess]) -> None:
    """A task the dispatcher has not reached yet is listed with status 0 and found by status=0 only."""
    c = Client(start_server("--dispatch-delay", "600").url)
    task_id = c.send(c.token(), userid_list="alice")["task_id"]
    assert [(t["task_id"], t["status"], t["counts"]) for t in get(c, "/tasks", status=0)["tasks"]] == [
        (task_id, 0, {})
    ]
    assert get(c, "/tasks", status=2)["tasks"] == []


# -- inboxes of unknown userids -----------------------------------------------------------------


def test_inbox_of_an_unknown_corp_or_userid_is_404(client: Client) -> None:
    """A typo in a corp or userid fails instead of reading as an empty inbox; real empty inboxes are 200."""
    assert api_error(client.api("GET", "/corps/nope/users/alice/messages")) == (404, "unknown_user")
    assert api_error(client.api("GET", "/corps/dingdemo/users/alcie/messages")) == (404, "unknown_user")
    assert client.inbox("alice") == []
    assert client.inbox("carol", unread="true", source="robot") == []


def test_inbox_of_a_userid_that_left_the_org_keeps_its_messages(client: Client) -> None:
    """Messages delivered to a user stay readable after the org drops the user; filters that leave
    nothing answer an empty page, not 404."""
    token = client.token()
    task_id = client.sent(token, userid_list="alice")
    doc = make_org("dingdemo", apps=[])
    assert client.load_org(doc).status_code == 200
    assert [m["task_id"] for m in client.inbox("alice")] == [task_id]
    assert client.inbox("alice", source="robot") == []
