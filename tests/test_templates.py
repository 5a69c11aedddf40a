"""sendbytemplate (spec §3.2, DESIGN §3/§4) over real HTTP: encodings, errors, limits, the task space.

Rule tests freeze the virtual clock, so no boundary depends on when the suite happens to run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from support import MESSAGES, Client, ServerProcess, in_parallel, make_org, oapi_error, store_sql

SEND = MESSAGES + "sendbytemplate"
FORM = "application/x-www-form-urlencoded;charset=utf-8"
APP, ISV, ISV2 = 5001, 6001, 6002
SUITE = {"suite_key": "acme-suite", "suite_secret": "acme-suite-secret"}
NOON = "2026-03-01T12:00:00+08:00"
TPL = "tpl-hello"
HELLO = {"msgtype": "markdown", "markdown": {"title": "Hi ${name}", "text": "Hello ${name}, see ${url}"}}
DATA = {"name": "Ann", "url": "https://example.com/a"}
FILLED = {"title": "Hi Ann", "text": "Hello Ann, see https://example.com/a"}
TEMPLATES = [
    {"template_id": TPL, "agent_id": ISV, "msg": HELLO},
    {"template_id": "tpl-pending", "agent_id": ISV, "status": "pending", "msg": HELLO},
    {"template_id": "tpl-disabled", "agent_id": ISV, "status": "disabled", "msg": HELLO},
    {"template_id": "tpl-partner2", "agent_id": ISV2, "msg": HELLO},
]


# -- helpers ---------------------------------------------------------------------------------------


def acme(
    c: Client,
    *,
    users: int = 3,
    templates: Sequence[dict[str, Any]] = TEMPLATES,
    departments: Sequence[dict[str, Any]] = (),
    extra_users: Sequence[dict[str, Any]] = (),
) -> dict[int, str]:
    """Corp `acme`: internal app 5001, ISV apps 6001 and 6002 of one suite, the templates; tokens."""
    apps = [
        {"agent_id": APP, "name": "Ops", "type": "internal", "app_key": "acme-key", "app_secret": "acme-s"},
        {"agent_id": ISV, "name": "Partner", "type": "isv", "suite_key": SUITE["suite_key"]},
        {"agent_id": ISV2, "name": "Partner 2", "type": "isv", "suite_key": SUITE["suite_key"]},
    ]
    doc = make_org(users=users, departments=departments, extra_users=extra_users, apps=apps, suites=[SUITE])
    doc["corps"][0]["templates"] = list(templates)
    resp = c.load_org(doc)
    assert resp.status_code == 200, resp.text
    isv = c.isv_token("acme", SUITE["suite_key"], SUITE["suite_secret"])
    return {APP: c.token("acme-key", "acme-s"), ISV: isv, ISV2: isv}


def call(c: Client, token: str, template_id: str = TPL, agent_id: int = ISV, **fields: Any) -> dict[str, Any]:
    return c.oapi(SEND, {"agent_id": agent_id, "template_id": template_id, **fields}, token)


def sent(c: Client, token: str, template_id: str = TPL, **fields: Any) -> int:
    """Send, wait until the task is finished, give its task_id."""
    body = call(c, token, template_id, **fields)
    assert body["errcode"] == 0, body
    assert set(body) == {"errcode", "errmsg", "task_id", "request_id"}
    assert c.task(body["task_id"], limit=1)["status"] == 2
    return int(body["task_id"])


def asyncsent(c: Client, token: str, msg: dict[str, Any], **fields: Any) -> int:
    body = c.send(token, msg, agent_id=ISV, **fields)
    assert body["errcode"] == 0, body
    assert c.task(body["task_id"], limit=1)["status"] == 2
    return int(body["task_id"])


def decided(c: Client, task_id: int) -> list[tuple[str, str, str | None, str | None]]:
    task = c.task(task_id, limit=100000)
    assert task["status"] == 2, task
    return [(r["userid"], r["outcome"], r["reason"], r["code"]) for r in task["recipients"]]


def post(c: Client, data: bytes | str, content_type: str, query: dict[str, Any] | None = None) -> Any:
    resp = c.http.post(c.base + SEND, params=query, data=data, headers={"Content-Type": content_type})
    assert resp.status_code == 200, resp.text
    return resp.json()


DELIVERED = ("delivered", None, None)


# -- encodings -------------------------------------------------------------------------------------


def _encodings(token: str) -> dict[str, tuple[bytes, str, dict[str, Any]]]:
    """The same call in every body encoding of spec §2.1: (body, content type, query)."""
    data_text = orjson.dumps(DATA).decode()
    native = {"agent_id": ISV, "template_id": TPL, "userid_list": "u00000", "data": DATA}
    by_token = {"access_token": token}
    stringified = {"agent_id": str(ISV), "template_id": TPL, "userid_list": "u00000", "data": DATA}
    text_data = {**native, "data": data_text}
    form = {"access_token": token, "agent_id": str(ISV), "template_id": TPL, "userid_list": "u00000"}
    boundary = "dingboxboundary"
    multipart = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in {**form, "data": data_text}.items()
    )
    return {
        "json_native": (orjson.dumps(native), "application/json", by_token),
        "json_stringified": (orjson.dumps(stringified), "application/json", by_token),
        "json_data_as_text": (orjson.dumps(text_data), "application/json", by_token),
        "form": (urlencode({**form, "data": data_text}).encode(), FORM, {}),
        "multipart": (
            (multipart + f"--{boundary}--\r\n").encode(),
            f"multipart/form-data; boundary={boundary}",
            {},
        ),
        "query_string": (b"", "application/json", {**by_token, **{**text_data, "agent_id": ISV}}),
    }


@pytest.mark.parametrize(
    "encoding",
    ["json_native", "json_stringified", "json_data_as_text", "form", "multipart", "query_string"],
)
def test_every_body_encoding_delivers_the_filled_template(client: Client, encoding: str) -> None:
    """Native JSON, the Java SDK's stringified JSON (data an object), data as JSON text, a form with the
    token inside, multipart and the query string all fill the template alike (spec §2.1, §3.2)."""
    tokens = acme(client)
    body, content_type, query = _encodings(tokens[ISV])[encoding]
    answer = post(client, body, content_type, query)
    assert answer["errcode"] == 0, answer
    task = client.task(answer["task_id"])
    assert (task["source"], task["status"], task["warnings"]) == ("template", 2, [])
    assert task["request"]["template_id"] == TPL and "access_token" not in task["request"]
    [message] = client.inbox("u00000", "acme")
    assert (message["source"], message["template_id"], message["template_data"]) == ("template", TPL, DATA)
    assert (message["msgtype"], message["content"], message["task_id"]) == (
        "markdown",
        FILLED,
        answer["task_id"],
    )


def _seed_org(c: Client) -> str:
    """The seed's sample ids: ISV app 123, template xxxx, users and departments 123 and 456."""
    doc = make_org(
        "dingseed",
        departments=[{"dept_id": 123, "name": "D123"}, {"dept_id": 456, "name": "D456"}],
        extra_users=[
            {"userid": "123", "name": "U123", "dept_ids": [123]},
            {"userid": "456", "name": "U456", "dept_ids": [456]},
            {"userid": "789", "name": "U789", "dept_ids": [456]},
        ],
        apps=[{"agent_id": 123, "name": "Seed", "type": "isv", "suite_key": SUITE["suite_key"]}],
        suites=[SUITE],
    )
    doc["corps"][0]["templates"] = [
        {
            "template_id": "xxxx",
            "agent_id": 123,
            "msg": {"msgtype": "markdown", "markdown": {"title": "通知", "text": "${名字}，你好"}},
        }
    ]
    assert c.load_org(doc).status_code == 200
    suite = c.oapi(
        "/service/get_suite_token", {"suite_key": SUITE["suite_key"], "suite_secret": SUITE["suite_secret"]}
    )
    corp = c.oapi(
        f"/service/get_corp_token?suite_access_token={suite['suite_access_token']}",
        {"auth_corpid": "dingseed"},
    )
    assert corp["errcode"] == 0, corp
    return str(corp["access_token"])


def test_the_seeds_curl_verbatim(client: Client) -> None:
    """The seed's curl, byte for byte but host and token, with a token from /service/get_corp_token:
    its escaped quotes around the lists and inside `data` are read with a warning each (spec §10 #18)."""
    token = _seed_org(client)
    curl_d = [
        f"access_token={token}",
        "agent_id=123",
        "data=%7B%5C%22%E5%90%8D%E5%AD%97%5C%22%3A%5C%22%E5%BC%A0%E4%B8%89%5C%22%7D",
        "dept_id_list=%5C%22123%2C456%5C%22",
        "template_id=xxxx",
        "userid_list=%5C%22123%2C456%5C%22",
    ]
    answer = post(client, "&".join(curl_d), FORM)
    assert answer["errcode"] == 0, answer
    task = client.task(answer["task_id"])
    assert [(r["userid"], r["outcome"]) for r in task["recipients"]] == [
        ("123", "delivered"),
        ("456", "delivered"),
        ("789", "delivered"),
    ]
    assert task["warnings"] == [
        "userid_list was wrapped in \\\" quotes, as in DingTalk's own samples",
        "dept_id_list was wrapped in \\\" quotes, as in DingTalk's own samples",
        "data had its quotes escaped as \\\", as in DingTalk's own curl sample",
    ]
    [message] = client.inbox("789", "dingseed")
    assert message["content"] == {"title": "通知", "text": "张三，你好"}
    assert message["template_data"] == {"名字": "张三"}


def test_python_sdk_style_data_text(client: Client) -> None:
    """The seed's Python sample: `data` is JSON text, here with non-ASCII keys as json.dumps escapes them."""
    token = _seed_org(client)
    data = '{"\\u540d\\u5b57": "\\u5f20\\u4e09"}'  # json.dumps({"名字": "张三"})
    task_id = sent(client, token, "xxxx", agent_id=123, userid_list="123", data=data)
    assert decided(client, task_id) == [("123", *DELIVERED)]
    assert client.inbox("123", "dingseed")[0]["content"]["text"] == "张三，你好"


# -- substitution ------------------------------------------------------------------------------------


def test_a_missing_key_stays_visible_and_is_a_warning(client: Client) -> None:
    """A placeholder `data` lacks is delivered as written and named in the task's warnings; a value
    that looks like a placeholder is not expanded again."""
    tokens = acme(client)
    task_id = sent(client, tokens[ISV], userid_list="u00000", data={"name": "${url}"})
    task = client.task(task_id)
    assert task["warnings"] == ["data has no value for ${url}; it was sent as written"]
    assert client.inbox("u00000", "acme")[0]["content"] == {
        "title": "Hi ${url}",
        "text": "Hello ${url}, see ${url}",
    }
    no_data = client.task(sent(client, tokens[ISV], userid_list="u00001"))
    assert no_data["warnings"] == [
        "data has no value for ${name}; it was sent as written",
        "data has no value for ${url}; it was sent as written",
    ]


def test_action_card_and_oa_templates_fill_nested_fields(client: Client) -> None:
    """Placeholders are filled in nested objects and lists: buttons, OA head, form rows; numbers in
    data are taken as their text."""
    card = {
        "msgtype": "action_card",
        "action_card": {
            "title": "Order ${id}",
            "markdown": "Order ${id} is ${state}",
            "btn_orientation": "1",
            "btn_json_list": [{"title": "Open", "action_url": "https://shop.example/${id}"}],
        },
    }
    oa = {
        "msgtype": "oa",
        "oa": {
            "message_url": "https://oa.example/${id}",
            "head": {"bgcolor": "${color}", "text": "OA"},
            "body": {"title": "Request ${id}", "form": [{"key": "State", "value": "${state}"}]},
        },
    }
    templates = [
        {"template_id": "tpl-card", "agent_id": ISV, "msg": card},
        {"template_id": "tpl-oa", "agent_id": ISV, "msg": oa},
    ]
    tokens = acme(client, templates=templates)
    data = {"id": 42, "state": "shipped", "color": "FFBBBBBB"}
    sent(client, tokens[ISV], "tpl-card", userid_list="u00000", data=data)
    sent(client, tokens[ISV], "tpl-oa", userid_list="u00000", data=data)
    inbox = {m["msgtype"]: m["content"] for m in client.inbox("u00000", "acme")}
    assert inbox["action_card"]["btn_json_list"] == [
        {"title": "Open", "action_url": "https://shop.example/42"}
    ]
    assert inbox["action_card"]["markdown"] == "Order 42 is shipped"
    assert inbox["oa"]["head"] == {"bgcolor": "FFBBBBBB", "text": "OA"}
    assert inbox["oa"]["body"]["form"] == [{"key": "State", "value": "shipped"}]
    assert client.inbox("u00000", "acme")[0]["template_data"] == {
        "id": "42",
        "state": "shipped",
        "color": "FFBBBBBB",
    }


def test_the_filled_message_obeys_the_field_rules(client: Client) -> None:
    """What substitution produces is validated as any message: a bad format or an empty required field
    is the field's 40035, with the template's field path."""
    oa = {
        "msgtype": "oa",
        "oa": {"message_url": "u", "head": {"bgcolor": "${color}", "text": "T"}, "body": {"title": "x"}},
    }
    titled = {"msgtype": "markdown", "markdown": {"title": "${title}", "text": "x"}}
    templates = [
        {"template_id": "tpl-oa", "agent_id": ISV, "msg": oa},
        {"template_id": "tpl-titled", "agent_id": ISV, "msg": titled},
    ]
    tokens = acme(client, templates=templates)
    bad_colour = call(client, tokens[ISV], "tpl-oa", userid_list="u00000", data={"color": "red"})
    assert oapi_error(bad_colour) == (40035, "不合法的参数 msg.oa.head.bgcolor")
    empty_title = call(client, tokens[ISV], "tpl-titled", userid_list="u00000", data={"title": " "})
    assert oapi_error(empty_title) == (40035, "缺少参数 msg.markdown.title")
    assert decided(
        client, sent(client, tokens[ISV], "tpl-oa", userid_list="u00000", data={"color": "FF000000"})
    ) == [("u00000", *DELIVERED)]


def test_2048_bytes_count_the_filled_message(client: Client) -> None:
    """DESIGN §3: the 2048-byte rule counts the canonical JSON of the filled message, in UTF-8 bytes:
    2048 is accepted, 2049 is 45002 消息内容超过限制."""
    big = {"msgtype": "markdown", "markdown": {"title": "t", "text": "${body}"}}
    tokens = acme(client, templates=[{"template_id": "tpl-big", "agent_id": ISV, "msg": big}])
    fits = "告" * 663 + "ab"  # 57 bytes of JSON around it: 2048 in all
    assert len(orjson.dumps({"markdown": {"text": fits, "title": "t"}, "msgtype": "markdown"})) == 2048
    task_id = sent(client, tokens[ISV], "tpl-big", userid_list="u00000", data={"body": fits})
    assert decided(client, task_id) == [("u00000", *DELIVERED)]
    over = call(client, tokens[ISV], "tpl-big", userid_list="u00000", data={"body": fits + "c"})
    assert oapi_error(over) == (45002, "消息内容超过限制")


# -- errors, one test per code ------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{"agent_id": APP, "template_id": TPL, "userid_list": "u00000"}, {}])
def test_internal_app_gets_88_60011(client: Client, body: dict[str, Any]) -> None:
    """DESIGN §4: templates are for ISV apps; an internal app's token is refused before any parameter."""
    tokens = acme(client)
    answer = client.oapi(SEND, body, tokens[APP])
    assert answer["errcode"] == 88, answer
    assert (answer["sub_code"], answer["sub_msg"]) == ("60011", "没有调用该接口的权限")


@pytest.mark.parametrize("agent_id", [APP, 9999])
def test_agent_id_not_the_tokens_is_400002(client: Client, agent_id: int) -> None:
    """Seed: 400002 agentId不合法 for an agent the ISV token does not speak for."""
    tokens = acme(client)
    assert oapi_error(call(client, tokens[ISV], agent_id=agent_id, userid_list="u00000")) == (
        400002,
        "agentId不合法",
    )


@pytest.mark.parametrize("template_id", ["tpl-nowhere", "tpl-partner2"])
def test_unknown_template_or_another_apps_is_885001(client: Client, template_id: str) -> None:
    """Seed: 885001 消息模板不存在, also for a template of another app of the same suite."""
    tokens = acme(client)
    answer = call(client, tokens[ISV], template_id, userid_list="u00000", data=DATA)
    assert oapi_error(answer) == (885001, "消息模板不存在")


@pytest.mark.parametrize("template_id", ["tpl-pending", "tpl-disabled"])
def test_pending_or_disabled_template_is_885006(client: Client, template_id: str) -> None:
    """Seed: 885006 消息模板不可用 until the template is approved, and once it is disabled."""
    tokens = acme(client)
    answer = call(client, tokens[ISV], template_id, userid_list="u00000", data=DATA)
    assert oapi_error(answer) == (885006, "消息模板不可用")


def test_unexpected_failure_is_500_without_a_traceback(server: ServerProcess, client: Client) -> None:
    """Seed: 500 系统异常 for a failure nothing foresaw — here a template row damaged on disk; nothing
    is accepted and the server keeps serving."""
    tokens = acme(client)
    store_sql(
        server.db, "UPDATE templates SET msg = 'not json' WHERE template_id = 'tpl-pending'", write=True
    )
    answer = call(client, tokens[ISV], "tpl-pending", userid_list="u00000", data=DATA)
    assert oapi_error(answer) == (500, "系统异常")
    assert client.api("GET", "/health").json()["pending_tasks"] == 0
    assert decided(client, sent(client, tokens[ISV], userid_list="u00000", data=DATA)) == [
        ("u00000", *DELIVERED)
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "缺少参数 userid_list/dept_id_list"),
        ({"userid_list": "", "dept_id_list": " , "}, "缺少参数 userid_list/dept_id_list"),
        ({"userid_list": "u00000", "template_id": None}, "缺少参数 template_id"),
        ({"userid_list": "u00000", "agent_id": None}, "缺少参数 agent_id"),
        ({"userid_list": "u00000", "agent_id": "x"}, "不合法的参数 agent_id"),
        ({"userid_list": "u00000", "data": "{not json"}, "不合法的参数 data"),
        ({"userid_list": "u00000", "data": "[1]"}, "不合法的参数 data"),
        ({"userid_list": "u00000", "data": {"name": {"first": "A"}}}, "不合法的参数 data.name"),
        ({"dept_id_list": "1,abc"}, "不合法的参数 dept_id_list"),  # typed as DingTalk types it
        ({"dept_id_list": "9" * 5000}, "不合法的参数 dept_id_list"),
        ({"userid_list": "u00000", "data": "[" * 300 + "]" * 300}, "不合法的参数 data"),
    ],
)
def test_missing_or_malformed_parameters_are_40035(
    client: Client, fields: dict[str, Any], expected: str
) -> None:
    """DESIGN §4: no recipients, a missing or malformed parameter → 40035 with its name."""
    tokens = acme(client)
    body = {"agent_id": ISV, "template_id": TPL, "data": DATA, **fields}
    answer = client.oapi(SEND, {k: v for k, v in body.items() if v is not None}, tokens[ISV])
    assert oapi_error(answer) == (40035, expected)


def test_list_limits_are_the_seeds_5000_users_and_500_departments(client: Client) -> None:
    """Seed: userid_list up to 5000 and dept_id_list up to 500 entries, even under strict limits (whose
    asyncsend_v2 lists stop at 100 / 20); one more is 40032 / 40066."""
    tokens = acme(client, users=1)
    users = ",".join(f"x{i}" for i in range(5000))
    depts = ",".join(str(1000 + i) for i in range(500))
    task_id = sent(client, tokens[ISV], userid_list=users, dept_id_list=depts, data=DATA)
    task = client.task(task_id, limit=1)
    assert (task["counts"], len(task["invalid_dept_ids"])) == ({"invalid": 5000}, 500)
    too_many_users = call(client, tokens[ISV], userid_list=users + ",x5000", data=DATA)
    assert oapi_error(too_many_users) == (40032, "不合法的UserID列表长度")
    too_many_depts = call(client, tokens[ISV], userid_list="u00000", dept_id_list=depts + ",9999", data=DATA)
    assert oapi_error(too_many_depts) == (40066, "不合法的部门列表")


# -- limits at their boundaries ----------------------------------------------------------------------


def test_1000_recipients_per_send_then_recipient_limit(lc: Client) -> None:
    """Seed: one send reaches at most 1000 recipients; the 1001st is forbidden with recipient_limit
    (no flow-control code), and getsendresult lists it."""
    tokens = acme(lc, users=1001)
    lc.freeze(NOON)
    task_id = sent(lc, tokens[ISV], userid_list=",".join(f"u{i:05d}" for i in range(1001)), data=DATA)
    outcomes = decided(lc, task_id)
    assert outcomes[999] == ("u00999", *DELIVERED)
    assert outcomes[1000] == ("u01000", "forbidden", "recipient_limit", None)
    result = lc.result(tokens[ISV], task_id, agent_id=ISV)
    assert (result["forbidden_user_id_list"], result["forbidden_list"]) == (["u01000"], [])
    assert len(result["unread_user_id_list"]) == 1000


def test_5000_recipients_per_minute_then_143203(client: Client) -> None:
    """Seed: at most 5000 recipients a minute per app: five full sends fill the minute of acceptance,
    the 5001st recipient is forbidden 143203 (count 5000), the next calendar minute is fresh."""
    tokens = acme(client, users=5001)
    client.freeze("2026-03-01T10:00:00+08:00")
    for block in range(5):
        users = ",".join(f"u{i:05d}" for i in range(block * 1000, block * 1000 + 1000))
        assert client.task(sent(client, tokens[ISV], userid_list=users, data=DATA), limit=1)["counts"] == {
            "delivered": 1000
        }
    client.freeze("2026-03-01T10:00:59.999+08:00")
    over = sent(client, tokens[ISV], userid_list="u05000", data=DATA)
    assert decided(client, over) == [("u05000", "forbidden", "minute_cap", "143203")]
    assert client.result(tokens[ISV], over, agent_id=ISV)["forbidden_list"] == [
        {"code": "143203", "count": 5000, "userid": "u05000"}
    ]
    client.freeze("2026-03-01T10:01:00+08:00")
    assert decided(client, sent(client, tokens[ISV], userid_list="u05000", data=DATA)) == [
        ("u05000", *DELIVERED)
    ]


def test_same_filled_content_once_per_day_143206(client: Client) -> None:
    """Seed: the same content to the same employee once a day; content is the filled message, so other
    data is other content, and asyncsend_v2 sending the same filled message is the same content."""
    tokens = acme(client)
    client.freeze(NOON)
    first = sent(client, tokens[ISV], userid_list="u00000,u00001", data=DATA)
    again = sent(client, tokens[ISV], userid_list="u00000,u00002", data=DATA)
    assert decided(client, first) == [("u00000", *DELIVERED), ("u00001", *DELIVERED)]
    assert decided(client, again) == [
        ("u00000", "forbidden", "duplicate_content", "143206"),
        ("u00002", *DELIVERED),
    ]
    assert client.result(tokens[ISV], again, agent_id=ISV)["forbidden_list"] == [
        {"code": "143206", "count": 1, "userid": "u00000"}
    ]
    same_by_asyncsend = asyncsent(
        client, tokens[ISV], {"msgtype": "markdown", "markdown": FILLED}, userid_list="u00001"
    )
    assert decided(client, same_by_asyncsend) == [("u00001", "forbidden", "duplicate_content", "143206")]
    other_data = sent(client, tokens[ISV], userid_list="u00000", data={**DATA, "name": "Bo"})
    assert decided(client, other_data) == [("u00000", *DELIVERED)]
    client.freeze("2026-03-02T00:00:00+08:00")
    assert decided(client, sent(client, tokens[ISV], userid_list="u00000", data=DATA)) == [
        ("u00000", *DELIVERED)
    ]


def test_100_messages_a_day_shared_with_asyncsend_v2_143205(client: Client) -> None:
    """Seed: at most 100 messages per employee a day, counted over the app's template and asyncsend_v2
    sends together: 99 of both kinds, the 100th (asyncsend_v2) delivered, the 101st forbidden 143205 on
    either endpoint; another app and the next Shanghai day are unaffected."""
    tokens = acme(client, users=1)
    client.freeze(NOON)

    def job(i: int) -> Callable[[Client], int]:
        if i % 2:
            return lambda c: sent(c, tokens[ISV], userid_list="u00000", data={"name": f"n{i}", "url": "u"})
        text = {"msgtype": "text", "text": {"content": f"n{i}"}}
        return lambda c: asyncsent(c, tokens[ISV], text, userid_list="u00000")

    in_parallel(client.base, [job(i) for i in range(99)])
    client.drain()
    hundredth = asyncsent(
        client, tokens[ISV], {"msgtype": "text", "text": {"content": "n99"}}, userid_list="u00000"
    )
    assert decided(client, hundredth) == [("u00000", *DELIVERED)]
    over_template = sent(client, tokens[ISV], userid_list="u00000", data={"name": "n100", "url": "u"})
    over_async = asyncsent(
        client, tokens[ISV], {"msgtype": "text", "text": {"content": "n100"}}, userid_list="u00000"
    )
    forbidden = [("u00000", "forbidden", "daily_cap", "143205")]
    assert decided(client, over_template) == decided(client, over_async) == forbidden
    assert client.result(tokens[ISV], over_template, agent_id=ISV)["forbidden_list"] == [
        {"code": "143205", "count": 100, "userid": "u00000"}
    ]
    other_app = sent(client, tokens[ISV2], "tpl-partner2", agent_id=ISV2, userid_list="u00000", data=DATA)
    assert decided(client, other_app) == [("u00000", *DELIVERED)]
    client.freeze("2026-03-02T00:00:00+08:00")
    next_day = sent(client, tokens[ISV], userid_list="u00000", data={"name": "n100", "url": "u"})
    assert decided(client, next_day) == [("u00000", *DELIVERED)]


# -- the task space it shares with asyncsend_v2 --------------------------------------------------------


def test_progress_result_recall_and_task_detail(client: Client) -> None:
    """A template task is answered by getsendprogress, getsendresult and recall like any other, and its
    task detail and messages name the template and its data."""
    tokens = acme(client)
    task_id = sent(client, tokens[ISV], userid_list="u00000,ghost", data=DATA)
    progress = client.oapi(MESSAGES + "getsendprogress", {"agent_id": ISV, "task_id": task_id}, tokens[ISV])
    assert progress["progress"] == {"progress_in_percent": 100, "status": 2}
    result = client.result(tokens[ISV], task_id, agent_id=ISV)
    assert (result["unread_user_id_list"], result["invalid_user_id_list"]) == (["u00000"], ["ghost"])
    task = client.task(task_id)
    assert (task["source"], task["agent_id"], task["counts"]) == (
        "template",
        ISV,
        {"delivered": 1, "invalid": 1},
    )
    [message] = client.inbox("u00000", "acme", source="template")
    assert client.api("GET", f"/messages/{message['id']}").json() == message
    recall = client.oapi(MESSAGES + "recall", {"agent_id": ISV, "msg_task_id": task_id}, tokens[ISV])
    assert recall["errcode"] == 0, recall
    assert client.inbox("u00000", "acme")[0]["recalled"] is True
    wrong_app = client.oapi(MESSAGES + "getsendprogress", {"agent_id": ISV2, "task_id": task_id}, tokens[ISV])
    assert oapi_error(wrong_app) == (40035, "不合法的参数 task_id")


def test_editing_a_template_leaves_delivered_messages_unchanged(client: Client) -> None:
    """Messages keep the content they were delivered with; only later sends use the edited template."""
    tokens = acme(client)
    before = sent(client, tokens[ISV], userid_list="u00000", data=DATA)
    edited = {"msgtype": "markdown", "markdown": {"title": "New ${name}", "text": "Changed"}}
    resp = client.api("PUT", f"/templates/{TPL}", json={"msg": edited})
    assert resp.status_code == 200, resp.text
    [old] = client.inbox("u00000", "acme")
    assert (old["task_id"], old["content"]) == (before, FILLED)
    after = sent(client, tokens[ISV], userid_list="u00000", data=DATA)
    newest, previous = client.inbox("u00000", "acme")
    assert (newest["task_id"], newest["content"]) == (after, {"title": "New Ann", "text": "Changed"})
    assert previous == old
