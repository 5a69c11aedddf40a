"""The rules of a send (DESIGN §3, spec §3.1/§3.4/§3.7) at their boundaries, over real HTTP.

Every test freezes the virtual clock, so no rule depends on when the suite happens to run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from support import MESSAGES, Client, ServerProcess, in_parallel, make_org, text

APP, APP2, ISV = 5001, 5002, 6001
SUITE = {"suite_key": "acme-suite", "suite_secret": "acme-suite-secret"}
NOON = "2026-03-01T12:00:00+08:00"


# -- helpers ---------------------------------------------------------------------------------------


def acme(
    c: Client,
    *,
    users: int = 0,
    departments: Sequence[dict[str, Any]] = (),
    extra_users: Sequence[dict[str, Any]] = (),
    app: dict[str, Any] | None = None,
    app2: dict[str, Any] | None = None,
    isv: dict[str, Any] | None = None,
) -> dict[int, str]:
    """Load corp `acme` with two internal apps and one ISV app (extra fields per app); tokens by agent_id."""
    apps = [
        {
            "agent_id": APP,
            "name": "Ops",
            "type": "internal",
            "app_key": "acme-key",
            "app_secret": "acme-secret",
            **(app or {}),
        },
        {
            "agent_id": APP2,
            "name": "HR",
            "type": "internal",
            "app_key": "acme-hr",
            "app_secret": "hr-secret",
            **(app2 or {}),
        },
        {"agent_id": ISV, "name": "Partner", "type": "isv", "suite_key": SUITE["suite_key"], **(isv or {})},
    ]
    doc = make_org(users=users, departments=departments, extra_users=extra_users, apps=apps, suites=[SUITE])
    resp = c.load_org(doc)
    assert resp.status_code == 200, resp.text
    return {
        APP: c.token("acme-key", "acme-secret"),
        APP2: c.token("acme-hr", "hr-secret"),
        ISV: c.isv_token("acme", SUITE["suite_key"], SUITE["suite_secret"]),
    }


def send(c: Client, tokens: dict[int, str], agent: int, content: str = "hello", **fields: Any) -> int:
    body = c.send(tokens[agent], text(content), agent_id=agent, **fields)
    assert body["errcode"] == 0, body
    return int(body["task_id"])


def decided(c: Client, task_id: int) -> list[tuple[str, str, str | None, str | None]]:
    """(userid, outcome, reason, code) of every recipient, once the task is finished."""
    task = c.task(task_id, limit=100000)
    assert task["status"] == 2, task
    return [(r["userid"], r["outcome"], r["reason"], r["code"]) for r in task["recipients"]]


def result(c: Client, tokens: dict[int, str], agent: int, task_id: int) -> dict[str, Any]:
    return c.result(tokens[agent], task_id, agent_id=agent)


# -- same content once per DingTalk day -------------------------------------------------------------


def test_same_content_twice_on_one_day_is_forbidden_143106(client: Client) -> None:
    """Spec §3.1/§3.4: same content, app, user and day → forbidden 143106; the others still get it."""
    tokens = acme(client, users=3)
    client.freeze(NOON)
    first = send(client, tokens, APP, "deploy done", userid_list="u00000")
    second = send(client, tokens, APP, "deploy done", userid_list="u00000,u00001")
    assert decided(client, first) == [("u00000", "delivered", None, None)]
    assert decided(client, second) == [
        ("u00000", "forbidden", "duplicate_content", "143106"),
        ("u00001", "delivered", None, None),
    ]
    assert result(client, tokens, APP, second) == {
        "invalid_user_id_list": [],
        "forbidden_user_id_list": ["u00000"],
        "failed_user_id_list": [],
        "read_user_id_list": [],
        "unread_user_id_list": ["u00001"],
        "invalid_dept_id_list": [],
        "forbidden_list": [{"code": "143106", "count": 1, "userid": "u00000"}],
    }
    assert [m["task_id"] for m in client.inbox("u00000", "acme")] == [first]
    assert client.task(second)["counts"] == {"delivered": 1, "forbidden": 1}


def test_isv_duplicate_is_143206(client: Client) -> None:
    """Spec §3.4: an ISV app's duplicate is reported with 143206."""
    tokens = acme(client, users=1)
    client.freeze(NOON)
    send(client, tokens, ISV, "welcome", userid_list="u00000")
    again = send(client, tokens, ISV, "welcome", userid_list="u00000")
    assert decided(client, again) == [("u00000", "forbidden", "duplicate_content", "143206")]
    assert result(client, tokens, ISV, again)["forbidden_list"] == [
        {"code": "143206", "count": 1, "userid": "u00000"}
    ]


def test_content_identity_is_the_canonical_json(client: Client) -> None:
    """DESIGN §3: key order and object-vs-JSON-text do not make content different; one changed byte does."""
    tokens = acme(client, users=1)
    client.freeze(NOON)
    first = send(client, tokens, APP, "same", userid_list="u00000")
    reordered = client.send(
        tokens[APP], '{"text": {"content": "same"}, "msgtype": "text"}', agent_id=APP, userid_list="u00000"
    )
    assert reordered["errcode"] == 0, reordered
    changed = send(client, tokens, APP, "same.", userid_list="u00000")
    assert decided(client, first) == [("u00000", "delivered", None, None)]
    assert decided(client, reordered["task_id"]) == [("u00000", "forbidden", "duplicate_content", "143106")]
    assert decided(client, changed) == [("u00000", "delivered", None, None)]


def test_dedup_is_per_app(client: Client) -> None:
    """Spec §3.1 (per micro-app): another app may send the same content to the same user on the same day."""
    tokens = acme(client, users=1)
    client.freeze(NOON)
    send(client, tokens, APP, "lunch", userid_list="u00000")
    other = send(client, tokens, APP2, "lunch", userid_list="u00000")
    again = send(client, tokens, APP, "lunch", userid_list="u00000")
    assert decided(client, other) == [("u00000", "delivered", None, None)]
    assert decided(client, again) == [("u00000", "forbidden", "duplicate_content", "143106")]
    assert sorted(m["agent_id"] for m in client.inbox("u00000", "acme")) == [APP, APP2]


def test_dedup_day_is_the_shanghai_calendar_day(client: Client) -> None:
    """DESIGN §3: the day runs 00:00–24:00 Asia/Shanghai; the UTC midnight (08:00 there) does not reset it."""
    tokens = acme(client, users=1)
    client.freeze("2026-03-01T00:00:00+08:00")
    first = send(client, tokens, APP, "x", userid_list="u00000")
    client.freeze("2026-03-01T07:59:59+08:00")
    before_utc_midnight = send(client, tokens, APP, "y", userid_list="u00000")
    client.freeze("2026-03-01T08:00:00+08:00")
    after_utc_midnight = send(client, tokens, APP, "y", userid_list="u00000")
    client.freeze("2026-03-01T23:59:59.999+08:00")
    last_instant = send(client, tokens, APP, "x", userid_list="u00000")
    client.freeze("2026-03-02T00:00:00+08:00")
    next_day = send(client, tokens, APP, "x", userid_list="u00000")
    assert decided(client, first) == [("u00000", "delivered", None, None)]
    assert decided(client, before_utc_midnight) == [("u00000", "delivered", None, None)]
    assert decided(client, after_utc_midnight) == [("u00000", "forbidden", "duplicate_content", "143106")]
    assert decided(client, last_instant) == [("u00000", "forbidden", "duplicate_content", "143106")]
    assert decided(client, next_day) == [("u00000", "delivered", None, None)]


def test_day_of_acceptance_decides_not_day_of_dispatch(start_server: Callable[..., ServerProcess]) -> None:
    """DESIGN §3 Time: a task accepted at 23:59:59, dispatched after midnight, counts on its accept day."""
    c = Client(start_server("--test-controls", "--dispatch-delay", "2.0").url)
    tokens = acme(c, users=1)
    c.freeze("2026-03-01T23:59:50+08:00")
    early = send(c, tokens, APP, "X", userid_list="u00000")
    assert decided(c, early) == [("u00000", "delivered", None, None)]
    c.advance(9)  # 23:59:59
    x_late = send(c, tokens, APP, "X", userid_list="u00000")
    y_late = send(c, tokens, APP, "Y", userid_list="u00000")
    c.advance(2)  # 00:00:01 the next day, before either task is dispatched
    assert c.task(x_late, wait=0)["status"] == 0
    x_next = send(c, tokens, APP, "X", userid_list="u00000")
    y_next = send(c, tokens, APP, "Y", userid_list="u00000")
    # X was already delivered on 03-01, the day x_late was accepted: forbidden although dispatched on 03-02.
    assert decided(c, x_late) == [("u00000", "forbidden", "duplicate_content", "143106")]
    # Y accepted on each side of midnight: delivered both times.
    assert decided(c, y_late) == [("u00000", "delivered", None, None)]
    assert decided(c, y_next) == [("u00000", "delivered", None, None)]
    assert decided(c, x_next) == [("u00000", "delivered", None, None)]
    late = c.task(x_late)
    assert late["accepted_at"] == "2026-03-01T23:59:59.000+08:00"
    assert late["finished_at"].startswith("2026-03-02T00:00:01")
    assert [m["task_id"] for m in c.inbox("u00000", "acme")] == [y_next, x_next, y_late, early]


def test_minute_of_acceptance_decides_not_minute_of_dispatch(
    start_server: Callable[..., ServerProcess],
) -> None:
    """DESIGN §3 Time: minute windows are calendar minutes of accepted_at, whenever the task is dispatched."""
    c = Client(start_server("--test-controls", "--dispatch-delay", "2.0").url)
    tokens = acme(c, users=3, app={"limits": {"per_minute": 1}})
    c.freeze("2026-03-01T10:00:59+08:00")
    late = send(c, tokens, APP, "a", userid_list="u00000")
    c.advance(2)  # 10:01:01, before `late` is dispatched
    assert c.task(late, wait=0)["status"] == 0
    fresh = send(c, tokens, APP, "b", userid_list="u00001")
    full = send(c, tokens, APP, "c", userid_list="u00002")
    assert decided(c, late) == [("u00000", "delivered", None, None)]
    assert decided(c, fresh) == [("u00001", "delivered", None, None)]
    assert decided(c, full) == [("u00002", "forbidden", "minute_cap", "143103")]


# -- daily per-user cap ----------------------------------------------------------------------------


@pytest.mark.parametrize(("agent", "cap", "code"), [(APP, 500, "143105"), (ISV, 100, "143205")])
def test_daily_cap_last_message_delivered_next_forbidden(
    client: Client, agent: int, cap: int, code: str
) -> None:
    """Spec §3.1/§10 #3: an app's 500th (ISV: 100th) message to a user in a day is delivered, the next
    is forbidden 143105 (ISV: 143205); another app and the next Shanghai day are unaffected."""
    tokens = acme(client, users=1)
    client.freeze(NOON)

    def job(i: int) -> Callable[[Client], int]:
        return lambda c: send(c, tokens, agent, f"n{i}", userid_list="u00000")

    in_parallel(client.base, [job(i) for i in range(cap - 1)])
    client.drain()
    last = send(client, tokens, agent, f"n{cap - 1}", userid_list="u00000")
    over = send(client, tokens, agent, f"n{cap}", userid_list="u00000")
    assert decided(client, last) == [("u00000", "delivered", None, None)]
    assert decided(client, over) == [("u00000", "forbidden", "daily_cap", code)]
    assert result(client, tokens, agent, over)["forbidden_list"] == [
        {"code": code, "count": cap, "userid": "u00000"}
    ]
    other_app = send(client, tokens, APP2, f"n{cap}", userid_list="u00000")
    assert decided(client, other_app) == [("u00000", "delivered", None, None)]
    client.freeze("2026-03-02T00:00:00+08:00")
    next_day = send(client, tokens, agent, f"n{cap + 1}", userid_list="u00000")
    assert decided(client, next_day) == [("u00000", "delivered", None, None)]


def test_daily_cap_is_shared_per_app_resets_at_midnight_and_survives_recall(client: Client) -> None:
    """DESIGN §3: one budget per (app, user, day) for all tasks; recall returns none; midnight resets."""
    tokens = acme(client, users=2, app={"limits": {"daily_per_user": 5}})
    client.freeze("2026-03-01T23:00:00+08:00")
    both = send(client, tokens, APP, "m1", userid_list="u00000,u00001")
    singles = [send(client, tokens, APP, f"m{i}", userid_list="u00000") for i in range(2, 6)]
    assert decided(client, both) == [("u00000", "delivered", None, None), ("u00001", "delivered", None, None)]
    assert [decided(client, t) for t in singles] == [[("u00000", "delivered", None, None)]] * 4
    recall = client.oapi(MESSAGES + "recall", {"agent_id": APP, "msg_task_id": singles[-1]}, tokens[APP])
    assert recall["errcode"] == 0, recall
    over = send(client, tokens, APP, "m6", userid_list="u00000,u00001")
    assert decided(client, over) == [
        ("u00000", "forbidden", "daily_cap", "143105"),
        ("u00001", "delivered", None, None),
    ]
    assert result(client, tokens, APP, over)["forbidden_list"] == [
        {"code": "143105", "count": 5, "userid": "u00000"}
    ]
    assert decided(client, send(client, tokens, APP2, "m6", userid_list="u00000")) == [
        ("u00000", "delivered", None, None)
    ]
    client.freeze("2026-03-01T23:59:59.999+08:00")
    assert decided(client, send(client, tokens, APP, "m7", userid_list="u00000")) == [
        ("u00000", "forbidden", "daily_cap", "143105")
    ]
    client.freeze("2026-03-02T00:00:00+08:00")
    assert decided(client, send(client, tokens, APP, "m7", userid_list="u00000")) == [
        ("u00000", "delivered", None, None)
    ]


# -- per-minute cap --------------------------------------------------------------------------------


def _two_halves(c: Client, *, app: dict[str, Any] | None = None) -> dict[int, str]:
    """6000 users: u00000–u02999 in department 2, u03000–u05999 in department 3."""
    users = [
        {"userid": f"u{i:05d}", "name": f"U{i}", "dept_ids": [2 if i < 3000 else 3]} for i in range(6000)
    ]
    depts = [{"dept_id": 2, "name": "A", "parent_id": 1}, {"dept_id": 3, "name": "B", "parent_id": 1}]
    return acme(c, departments=depts, extra_users=users, app=app)


def test_minute_cap_second_3000_recipient_task_loses_exactly_1000(lc: Client) -> None:
    """Spec §3.1: ≤ 5000 recipients per app per minute; the next calendar minute of accepted_at is fresh."""
    tokens = _two_halves(lc)
    lc.freeze("2026-03-01T10:00:00+08:00")
    first = send(lc, tokens, APP, "a", dept_id_list="2")
    lc.advance(30)
    second = send(lc, tokens, APP, "b", dept_id_list="3")
    other_app = send(lc, tokens, APP2, "b", dept_id_list="3")
    assert lc.task(first, limit=1)["counts"] == {"delivered": 3000}
    outcomes = decided(lc, second)
    assert outcomes[:2000] == [(f"u{i:05d}", "delivered", None, None) for i in range(3000, 5000)]
    assert outcomes[2000:] == [(f"u{i:05d}", "forbidden", "minute_cap", "143103") for i in range(5000, 6000)]
    sent = result(lc, tokens, APP, second)
    assert sent["forbidden_user_id_list"] == [f"u{i:05d}" for i in range(5000, 6000)]
    assert sent["forbidden_list"] == [
        {"code": "143103", "count": 5000, "userid": f"u{i:05d}"} for i in range(5000, 6000)
    ]
    assert lc.task(other_app, limit=1)["counts"] == {"delivered": 3000}
    lc.advance(30)  # 10:01:00, the next calendar minute, only 30 s after `second`
    third = send(lc, tokens, APP, "c", dept_id_list="3")
    assert lc.task(third, limit=1)["counts"] == {"delivered": 3000}


def test_isv_minute_cap_is_143203(client: Client) -> None:
    """Spec §3.4: an ISV app over its per-minute recipient cap gets 143203 (cap lowered per app to 2)."""
    tokens = acme(client, users=3, isv={"limits": {"per_minute": 2}})
    client.freeze("2026-03-01T10:00:59+08:00")
    task = send(client, tokens, ISV, "a", userid_list="u00000,u00001,u00002")
    assert decided(client, task)[2] == ("u00002", "forbidden", "minute_cap", "143203")
    assert result(client, tokens, ISV, task)["forbidden_list"] == [
        {"code": "143203", "count": 2, "userid": "u00002"}
    ]
    client.advance(1)
    assert decided(client, send(client, tokens, ISV, "b", userid_list="u00002")) == [
        ("u00002", "delivered", None, None)
    ]


# -- per-call cap ----------------------------------------------------------------------------------


def test_per_call_cap_internal_5000_then_recipient_limit_without_code(lc: Client) -> None:
    """Spec §3.1: an internal call reaches ≤ 5000 recipients; the 5001st is recipient_limit, no code."""
    tokens = acme(lc, users=5001, app={"limits": {"per_minute": None}})
    lc.freeze(NOON)
    task = send(lc, tokens, APP, "all hands", to_all_user=True)
    outcomes = decided(lc, task)
    assert len(outcomes) == 5001
    assert outcomes[4999] == ("u04999", "delivered", None, None)
    assert outcomes[5000] == ("u05000", "forbidden", "recipient_limit", None)
    sent = result(lc, tokens, APP, task)
    assert (sent["forbidden_user_id_list"], sent["forbidden_list"]) == (["u05000"], [])
    assert len(sent["unread_user_id_list"]) == 5000
    assert lc.inbox("u05000", "acme") == []


def test_minute_cap_precedes_per_call_cap(lc: Client) -> None:
    """DESIGN §3 rules 7–8: with both caps at 5000, the 5001st recipient of a fresh minute is minute_cap."""
    tokens = acme(lc, users=5001)
    lc.freeze(NOON)
    task = send(lc, tokens, APP, "all hands", to_all_user=True)
    assert decided(lc, task)[5000] == ("u05000", "forbidden", "minute_cap", "143103")
    assert lc.task(task, limit=1)["counts"] == {"delivered": 5000, "forbidden": 1}


def test_isv_per_call_cap_is_1000(lc: Client) -> None:
    """Spec §3.1: an ISV call reaches ≤ 1000 recipients; the rest are forbidden with recipient_limit."""
    tokens = acme(lc, users=1001)
    lc.freeze(NOON)
    task = send(lc, tokens, ISV, "hi", userid_list=",".join(f"u{i:05d}" for i in range(1001)))
    outcomes = decided(lc, task)
    assert outcomes[999] == ("u00999", "delivered", None, None)
    assert outcomes[1000] == ("u01000", "forbidden", "recipient_limit", None)


# -- invalid and failed recipients, and the order of the rules -------------------------------------

_DEPTS = [
    {"dept_id": 2, "name": "Eng", "parent_id": 1},
    {"dept_id": 3, "name": "Platform", "parent_id": 2},
    {"dept_id": 4, "name": "Sales", "parent_id": 1},
]
_PEOPLE = [
    {"userid": "in2", "name": "In2", "dept_ids": [2]},
    {"userid": "in3", "name": "In3", "dept_ids": [3]},
    {"userid": "out4", "name": "Out4", "dept_ids": [4]},
    {"userid": "solo", "name": "Solo", "dept_ids": [4]},
    {"userid": "rootu", "name": "Root", "dept_ids": [1]},
    {"userid": "lazy", "name": "Lazy", "dept_ids": [3], "active": False},
    {"userid": "lazyout", "name": "LazyOut", "dept_ids": [4], "active": False},
]


def test_visible_to_inactive_and_unknown_users(client: Client) -> None:
    """DESIGN §3 rules 2–4: unknown → invalid_user, outside visible_to → not_visible, inactive → failed."""
    tokens = acme(
        client,
        departments=_DEPTS,
        extra_users=_PEOPLE,
        app={"visible_to": {"dept_ids": [2], "userids": ["solo"]}},
    )
    client.freeze(NOON)
    task = send(client, tokens, APP, "hi", userid_list="in2,in3,out4,solo,rootu,lazy,lazyout,ghost")
    assert decided(client, task) == [
        ("in2", "delivered", None, None),
        ("in3", "delivered", None, None),  # a sub-department of a visible one is visible
        ("out4", "invalid", "not_visible", None),
        ("solo", "delivered", None, None),
        ("rootu", "invalid", "not_visible", None),
        ("lazy", "failed", "inactive_user", None),
        ("lazyout", "invalid", "not_visible", None),  # visibility is decided before activity
        ("ghost", "invalid", "invalid_user", None),
    ]
    assert result(client, tokens, APP, task) == {
        "invalid_user_id_list": ["out4", "rootu", "lazyout", "ghost"],
        "forbidden_user_id_list": [],
        "failed_user_id_list": ["lazy"],
        "read_user_id_list": [],
        "unread_user_id_list": ["in2", "in3", "solo"],
        "invalid_dept_id_list": [],
        "forbidden_list": [],
    }
    assert client.task(task)["counts"] == {"delivered": 3, "invalid": 4, "failed": 1}
    assert client.inbox("lazy", "acme") == [] and client.inbox("out4", "acme") == []
    # A department outside the range is a known department: its users are each not_visible.
    outside = send(client, tokens, APP, "dept", dept_id_list="4")
    assert decided(client, outside) == [
        ("lazyout", "invalid", "not_visible", None),
        ("out4", "invalid", "not_visible", None),
        ("solo", "delivered", None, None),
    ]
    assert result(client, tokens, APP, outside)["invalid_dept_id_list"] == []


def test_an_org_load_changes_the_visible_range_of_later_sends(client: Client) -> None:
    """The visible range is read once per org load: a load that moves a user into the range, or
    widens it, is honoured by the next send at once."""
    tokens = acme(client, departments=_DEPTS, extra_users=_PEOPLE, app={"visible_to": {"dept_ids": [2]}})
    before = decided(client, send(client, tokens, APP, "before", userid_list="in2,out4"))
    moved = [{**p, "dept_ids": [2]} if p["userid"] == "out4" else p for p in _PEOPLE]
    tokens = acme(client, departments=_DEPTS, extra_users=moved, app={"visible_to": {"dept_ids": [2]}})
    after_move = decided(client, send(client, tokens, APP, "after a move", userid_list="in2,out4,solo"))
    tokens = acme(client, departments=_DEPTS, extra_users=moved, app={"visible_to": {"dept_ids": [2, 4]}})
    after_widening = decided(client, send(client, tokens, APP, "after widening", userid_list="solo"))

    assert [d[1:3] for d in before] == [("delivered", None), ("invalid", "not_visible")]
    assert [d[1:3] for d in after_move] == [
        ("delivered", None),
        ("delivered", None),
        ("invalid", "not_visible"),
    ]
    assert [d[1:3] for d in after_widening] == [("delivered", None)]


def test_unknown_and_malformed_department_ids(client: Client) -> None:
    """DESIGN §3 rule 2: unknown department ids (any integer, 0 included) do not fail the call and are
    listed in invalid_dept_id_list as integers, negatives too; an id that is not an int64 is refused at
    accept."""
    tokens = acme(client, departments=_DEPTS, extra_users=_PEOPLE)
    client.freeze(NOON)
    task = send(client, tokens, APP, "hi", dept_id_list="3,99,0,+99,0003,99,-5")
    assert decided(client, task) == [
        ("in3", "delivered", None, None),
        ("lazy", "failed", "inactive_user", None),
    ]
    assert result(client, tokens, APP, task)["invalid_dept_id_list"] == [99, 0, -5]
    only_bad = send(client, tokens, APP, "hi", dept_id_list="98,0")
    detail = client.task(only_bad)
    assert (detail["status"], detail["counts"], detail["recipients"], detail["invalid_dept_ids"]) == (
        2,
        {},
        [],
        [98, 0],
    )
    assert result(client, tokens, APP, only_bad)["invalid_dept_id_list"] == [98, 0]
    for malformed in ["abc", "²", "99999999999999999999", "1.5"]:
        refused = client.send(tokens[APP], agent_id=APP, dept_id_list=f"3,{malformed}")
        assert (refused["errcode"], refused["errmsg"]) == (40035, "不合法的参数 dept_id_list")


def test_recipients_that_are_not_delivered_consume_no_budget(client: Client) -> None:
    """DESIGN §3: only delivered recipients consume budgets; unknown, invisible, inactive ones never do."""
    tokens = acme(
        client,
        departments=_DEPTS,
        extra_users=_PEOPLE,
        app={"visible_to": {"dept_ids": [2]}, "limits": {"per_minute": 2}},
    )
    client.freeze(NOON)
    task = send(client, tokens, APP, "hi", userid_list="ghost,out4,lazy,in2,in3,solo")
    assert decided(client, task) == [
        ("ghost", "invalid", "invalid_user", None),
        ("out4", "invalid", "not_visible", None),
        ("lazy", "failed", "inactive_user", None),
        ("in2", "delivered", None, None),
        ("in3", "delivered", None, None),
        ("solo", "invalid", "not_visible", None),
    ]
    full = send(client, tokens, APP, "again", userid_list="in2")
    assert decided(client, full) == [("in2", "forbidden", "minute_cap", "143103")]


def test_duplicate_precedes_daily_cap_which_precedes_minute_cap(client: Client) -> None:
    """DESIGN §3 rules 5–7: the first rule that applies decides; forbidden recipients consume nothing."""
    tokens = acme(client, users=3, app={"limits": {"daily_per_user": 1, "per_minute": 2}})
    client.freeze(NOON)
    send(client, tokens, APP, "X", userid_list="u00000")
    dup = send(client, tokens, APP, "X", userid_list="u00000")
    mixed = send(client, tokens, APP, "Y", userid_list="u00000,u00001,u00002")
    assert decided(client, dup) == [("u00000", "forbidden", "duplicate_content", "143106")]
    assert decided(client, mixed) == [
        ("u00000", "forbidden", "daily_cap", "143105"),
        ("u00001", "delivered", None, None),
        ("u00002", "forbidden", "minute_cap", "143103"),
    ]
    assert result(client, tokens, APP, mixed)["forbidden_list"] == [
        {"code": "143105", "count": 1, "userid": "u00000"},
        {"code": "143103", "count": 2, "userid": "u00002"},
    ]


def test_inactive_or_invisible_user_is_decided_before_any_cap(client: Client) -> None:
    """DESIGN §3: a user over the daily cap who becomes inactive is failed, one made invisible is invalid."""
    people = [{"userid": "a", "name": "A"}, {"userid": "b", "name": "B"}]
    tokens = acme(client, extra_users=people, app={"limits": {"daily_per_user": 1}})
    client.freeze(NOON)
    assert decided(client, send(client, tokens, APP, "X", userid_list="a,b")) == [
        ("a", "delivered", None, None),
        ("b", "delivered", None, None),
    ]
    people[0]["active"] = False
    tokens = acme(
        client, extra_users=people, app={"limits": {"daily_per_user": 1}, "visible_to": {"userids": ["a"]}}
    )
    assert decided(client, send(client, tokens, APP, "X", userid_list="a,b")) == [
        ("a", "failed", "inactive_user", None),
        ("b", "invalid", "not_visible", None),
    ]
    assert decided(client, send(client, tokens, APP, "Y", userid_list="a,b")) == [
        ("a", "failed", "inactive_user", None),
        ("b", "invalid", "not_visible", None),
    ]


# -- order of decisions with several dispatchers ---------------------------------------------------


def test_one_app_tasks_are_decided_in_acceptance_order(start_server: Callable[..., ServerProcess]) -> None:
    """DESIGN §3 Time: one app's tasks are decided in order of acceptance, even with 4 dispatcher loops."""
    proc = start_server(
        "--test-controls",
        "--dispatchers",
        "4",
        "--dispatch-delay",
        "0.5",
        "--batch-size",
        "1",
        "--batch-pause",
        "0.01",
    )
    c = Client(proc.url)
    tokens = acme(c, users=20, app={"limits": {"daily_per_user": 3}})
    c.freeze(NOON)
    # The first task is long and reaches u00019 last; the later short ones would overtake it if allowed to.
    crowd = ",".join(f"u{i:05d}" for i in range(20))
    capped = [send(c, tokens, APP, "m0", userid_list=crowd)]
    deduped = [send(c, tokens, APP2, "same", userid_list=crowd)]
    for i in range(1, 8):
        capped.append(send(c, tokens, APP, f"m{i}", userid_list="u00019"))
        deduped.append(send(c, tokens, APP2, "same", userid_list="u00019"))
    c.drain()
    delivered = [("u00019", "delivered", None, None)]
    assert [decided(c, t)[-1:] for t in capped] == [delivered] * 3 + [
        [("u00019", "forbidden", "daily_cap", "143105")]
    ] * 5
    duplicate = [("u00019", "forbidden", "duplicate_content", "143106")]
    assert [decided(c, t)[-1:] for t in deduped] == [delivered] + [duplicate] * 7
    assert c.task(capped[0])["counts"] == {"delivered": 20}


# -- limits profiles -------------------------------------------------------------------------------


def _ids(prefix: str, n: int) -> str:
    return ",".join(f"{prefix}{i}" for i in range(n))


def test_strict_list_limits_100_users_20_departments(client: Client) -> None:
    """DESIGN §3 strict: userid_list ≤ 100 (101 → 40032), dept_id_list ≤ 20 (21 → 40066)."""
    tokens = acme(client, users=1)
    client.freeze(NOON)
    assert client.send(tokens[APP], text("a"), agent_id=APP, userid_list=_ids("x", 100))["errcode"] == 0
    over = client.send(tokens[APP], text("b"), agent_id=APP, userid_list=_ids("x", 101))
    assert (sorted(over), over["errcode"], over["errmsg"]) == (
        ["errcode", "errmsg", "request_id"],
        40032,
        "不合法的UserID列表长度",
    )
    assert client.send(tokens[APP], text("c"), agent_id=APP, dept_id_list=_ids("", 20))["errcode"] == 0
    over = client.send(tokens[APP], text("d"), agent_id=APP, dept_id_list=_ids("", 21))
    assert (sorted(over), over["errcode"], over["errmsg"]) == (
        ["errcode", "errmsg", "request_id"],
        40066,
        "不合法的部门列表",
    )


def test_per_app_list_limit_overrides(client: Client) -> None:
    """DESIGN §6: an app's `limits` override the profile's list limits."""
    tokens = acme(client, users=1, app={"limits": {"userid_list": 3, "dept_id_list": 2}})
    assert client.send(tokens[APP], text("a"), agent_id=APP, userid_list=_ids("x", 3))["errcode"] == 0
    assert client.send(tokens[APP], text("a"), agent_id=APP, userid_list=_ids("x", 4))["errcode"] == 40032
    assert client.send(tokens[APP], text("a"), agent_id=APP, dept_id_list="1,2")["errcode"] == 0
    assert client.send(tokens[APP], text("a"), agent_id=APP, dept_id_list="1,2,3")["errcode"] == 40066
    assert client.send(tokens[APP2], text("a"), agent_id=APP2, userid_list=_ids("x", 4))["errcode"] == 0


def test_lenient_list_limits_5000_users_500_departments(lc: Client) -> None:
    """DESIGN §3 lenient: userid_list ≤ 5000 (5001 → 40032), dept_id_list ≤ 500 (501 → 40066)."""
    tokens = acme(lc, users=1)
    lc.freeze(NOON)
    assert lc.send(tokens[APP], text("a"), agent_id=APP, userid_list=_ids("x", 5000))["errcode"] == 0
    assert lc.send(tokens[APP], text("b"), agent_id=APP, userid_list=_ids("x", 5001))["errcode"] == 40032
    assert lc.send(tokens[APP], text("c"), agent_id=APP, dept_id_list=_ids("", 500))["errcode"] == 0
    assert lc.send(tokens[APP], text("d"), agent_id=APP, dept_id_list=_ids("", 501))["errcode"] == 40066


def test_unlimited_lifts_every_cap_but_keeps_dedup(start_server: Callable[..., ServerProcess]) -> None:
    """DESIGN §3 unlimited: no per-call, minute or daily cap (per-app overrides apply); dedup stays."""
    c = Client(start_server("--test-controls", "--limits", "unlimited").url)
    tokens = acme(c, users=6001, app2={"limits": {"daily_per_user": 1}})
    c.freeze(NOON)
    everyone = send(c, tokens, APP, "all", to_all_user=True)
    assert c.task(everyone, limit=1)["counts"] == {"delivered": 6001}
    again = send(c, tokens, APP, "all", to_all_user=True)
    assert c.task(again, limit=1)["counts"] == {"forbidden": 6001}
    assert decided(c, again)[0] == ("u00000", "forbidden", "duplicate_content", "143106")

    def job(i: int) -> Callable[[Client], int]:
        return lambda cl: send(cl, tokens, APP, f"n{i}", userid_list="u00001")

    in_parallel(c.base, [job(i) for i in range(500)])
    c.drain()
    assert decided(c, send(c, tokens, APP, "n500", userid_list="u00001")) == [
        ("u00001", "delivered", None, None)
    ]
    send(c, tokens, APP2, "p", userid_list="u00001")
    capped = send(c, tokens, APP2, "q", userid_list="u00001")
    assert decided(c, capped) == [("u00001", "forbidden", "daily_cap", "143105")]
