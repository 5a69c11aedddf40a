"""Body encodings of asyncsend_v2 (spec §2.1, DESIGN §3 "Parsing"), over HTTP.

Each encoding must land on the same task: the test reads back the stored request (as received,
token removed) and the resolved recipients from /api/v1/tasks/{id}.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest

from support import DEMO_AGENT, MESSAGES, Client

SEND = MESSAGES + "asyncsend_v2"
FORM = "application/x-www-form-urlencoded;charset=utf-8"
MSG = {"msgtype": "text", "text": {"content": "编码测试"}}
MSG_TEXT = orjson.dumps(MSG).decode()
BOB = "0356123401"
ARRAY_WARNING = "userid_list was a JSON array; DingTalk documents a comma-separated string"
EVERYONE = [("0356123401", "delivered"), ("alice", "delivered"), ("carol", "failed")]


def post(
    client: Client,
    body: bytes | str = b"",
    *,
    content_type: str | None = None,
    query: dict[str, Any] | None = None,
) -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type else {}
    data = body.encode() if isinstance(body, str) else body
    resp = client.http.post(client.base + SEND, params=query, data=data, headers=headers)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def post_json(client: Client, body: Any, token: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    query = {"access_token": token, **(query or {})}
    return post(client, orjson.dumps(body), content_type="application/json", query=query)


def accepted(client: Client, response: dict[str, Any]) -> dict[str, Any]:
    """The finished task of an accepted send."""
    assert response["errcode"] == 0, response
    assert set(response) == {"errcode", "errmsg", "task_id", "request_id"}
    task = client.task(response["task_id"], wait=5)
    assert task["status"] == 2, task
    return task


def recipients(task: dict[str, Any], *, ordered: bool = True) -> list[tuple[str, str]]:
    found = [(r["userid"], r["outcome"]) for r in task["recipients"]]
    return found if ordered else sorted(found)


def error(response: dict[str, Any]) -> tuple[int, str]:
    assert set(response) == {"errcode", "errmsg", "request_id"}, response
    return response["errcode"], response["errmsg"]


# -- the four encodings -------------------------------------------------------------------------------


def test_json_with_native_types(client: Client) -> None:
    """JSON with native types (spec §2.1 encoding 1) is stored as sent and reaches its recipients."""
    body = {"agent_id": DEMO_AGENT, "userid_list": f"alice,{BOB}", "to_all_user": False, "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert task["request"] == body
    assert task["warnings"] == []
    assert recipients(task) == [("alice", "delivered"), (BOB, "delivered")]
    [message] = client.inbox("alice")
    assert (message["msgtype"], message["content"]) == ("text", {"content": "编码测试"})


def test_json_with_stringified_scalars(client: Client) -> None:
    """The Java SDK's style: every scalar a string, msg an object (spec §2.1 encoding 2)."""
    body = {"agent_id": str(DEMO_AGENT), "to_all_user": "false", "userid_list": "alice", "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert task["request"] == body
    assert recipients(task) == [("alice", "delivered")]
    assert client.inbox("alice")[0]["content"] == {"content": "编码测试"}


def test_form_body_with_token_inside(client: Client) -> None:
    """The seed's curl form: urlencoded, token in the form, msg as JSON text (spec §2.1 encoding 3, §1.5)."""
    form = urlencode(
        {"access_token": client.token(), "agent_id": str(DEMO_AGENT), "userid_list": "alice", "msg": MSG_TEXT}
    )
    task = accepted(client, post(client, form, content_type=FORM))
    assert task["request"] == {"agent_id": "1001", "userid_list": "alice", "msg": MSG_TEXT}
    assert recipients(task) == [("alice", "delivered")]
    assert client.inbox("alice")[0]["content"] == {"content": "编码测试"}


def test_json_whose_msg_is_a_json_string(client: Client) -> None:
    """TOP-style clients send msg as JSON text inside a JSON body (spec §2.1 encoding 4, §10 #19)."""
    body = {"agent_id": DEMO_AGENT, "userid_list": "alice", "msg": MSG_TEXT}
    task = accepted(client, post_json(client, body, client.token()))
    assert task["request"] == body
    assert recipients(task) == [("alice", "delivered")]
    assert client.inbox("alice")[0]["content"] == {"content": "编码测试"}


def test_parameters_in_the_query_string(client: Client) -> None:
    """Every parameter may come in the query string, with an empty body (spec §2.1, §3.9)."""
    query = {"access_token": client.token(), "agent_id": "1001", "userid_list": "alice", "msg": MSG_TEXT}
    task = accepted(client, post(client, query=query))
    assert task["request"] == {"agent_id": "1001", "userid_list": "alice", "msg": MSG_TEXT}
    assert recipients(task) == [("alice", "delivered")]


def test_body_wins_over_query(client: Client) -> None:
    """Query and body are merged, the body winning where both give a parameter (spec §2.1)."""
    token = client.token()
    query = {"access_token": token, "agent_id": "1001", "userid_list": "alice", "to_all_user": "true"}
    task = accepted(
        client, post_json(client, {"userid_list": BOB, "to_all_user": False, "msg": MSG}, token, query=query)
    )
    assert task["request"] == {"agent_id": "1001", "userid_list": BOB, "to_all_user": False, "msg": MSG}
    assert recipients(task) == [(BOB, "delivered")]
    form = urlencode({"userid_list": "carol", "msg": MSG_TEXT})
    task = accepted(client, post(client, form, content_type=FORM, query=query | {"to_all_user": "false"}))
    assert task["request"] == {
        "agent_id": "1001",
        "userid_list": "carol",
        "to_all_user": "false",
        "msg": MSG_TEXT,
    }
    assert recipients(task) == [("carol", "failed")]


def test_every_encoding_is_the_same_content(client: Client) -> None:
    """The four encodings of one message are one content: after the first, alice is forbidden 143106."""
    token = client.token()
    sends = [
        post_json(client, {"agent_id": DEMO_AGENT, "userid_list": "alice", "msg": MSG}, token),
        post_json(
            client, {"agent_id": "1001", "userid_list": "alice", "to_all_user": "false", "msg": MSG}, token
        ),
        post(
            client,
            urlencode({"access_token": token, "agent_id": "1001", "userid_list": "alice", "msg": MSG_TEXT}),
            content_type=FORM,
        ),
        post_json(client, {"agent_id": DEMO_AGENT, "userid_list": "alice", "msg": MSG_TEXT}, token),
        post(
            client, query={"access_token": token, "agent_id": "1001", "userid_list": "alice", "msg": MSG_TEXT}
        ),
    ]
    outcomes = [[(r["outcome"], r["code"]) for r in accepted(client, s)["recipients"]] for s in sends]
    assert outcomes == [[("delivered", None)]] + [[("forbidden", "143106")]] * 4


# -- lists --------------------------------------------------------------------------------------------


def test_json_array_list_is_accepted_with_a_warning(client: Client) -> None:
    """A JSON array where DingTalk documents a comma string is accepted and warned about (DESIGN §3)."""
    body = {"agent_id": DEMO_AGENT, "userid_list": ["alice", BOB, "alice"], "dept_id_list": [3], "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert task["request"] == body
    assert task["warnings"] == [
        ARRAY_WARNING,
        "dept_id_list was a JSON array; DingTalk documents a comma-separated string",
    ]
    assert recipients(task) == [("alice", "delivered"), (BOB, "delivered"), ("carol", "failed")]


def test_json_array_items_with_commas_name_several_users(client: Client) -> None:
    """An array item holding a comma names two users, as the documented comma string would; the
    getsendresult lists (joined and split on commas) then stay exact."""
    body = {"agent_id": DEMO_AGENT, "userid_list": ["alice,ghost one", BOB], "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert recipients(task) == [("alice", "delivered"), ("ghost one", "invalid"), (BOB, "delivered")]
    result = client.result(client.token(), task["task_id"])
    assert (result["unread_user_id_list"], result["invalid_user_id_list"]) == (["alice", BOB], ["ghost one"])


def test_seed_curl_escaped_quotes_are_stripped(client: Client) -> None:
    """The sendbytemplate curl's `\\"123,456\\"` wrapping is stripped, with a warning (spec §2.1, §10 #18)."""
    artifact = f"%5C%22alice%2C{BOB}%5C%22"  # curl's -d 'userid_list=%5C%22123%2C456%5C%22'
    raw = f"access_token={client.token()}&agent_id=1001&userid_list={artifact}&msg={quote(MSG_TEXT)}"
    task = accepted(client, post(client, raw, content_type=FORM))
    assert task["request"] == {"agent_id": "1001", "userid_list": f'\\"alice,{BOB}\\"', "msg": MSG_TEXT}
    assert task["warnings"] == ["userid_list was wrapped in \\\" quotes, as in DingTalk's own samples"]
    assert recipients(task) == [("alice", "delivered"), (BOB, "delivered")]


def test_plain_quotes_are_stripped(client: Client) -> None:
    """Emulator choice: the PHP sample's plain `"123,456"` wrapping is stripped too, with a warning."""
    body = {"agent_id": DEMO_AGENT, "userid_list": f'"alice,{BOB}"', "dept_id_list": '"3"', "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert task["warnings"] == [
        "userid_list was wrapped in \" quotes, as in DingTalk's own samples",
        "dept_id_list was wrapped in \" quotes, as in DingTalk's own samples",
    ]
    assert recipients(task) == [("alice", "delivered"), (BOB, "delivered"), ("carol", "failed")]


def test_comma_lists_are_trimmed_and_deduplicated(client: Client) -> None:
    """Comma lists: trimmed, empty segments dropped, duplicates removed, no warning (DESIGN §3)."""
    body = {
        "agent_id": DEMO_AGENT,
        "userid_list": f" alice , ,{BOB},alice,, ",
        "dept_id_list": " 3 ,,3, ",
        "msg": MSG,
    }
    task = accepted(client, post_json(client, body, client.token()))
    assert task["request"] == body
    assert task["warnings"] == []
    assert recipients(task) == [("alice", "delivered"), (BOB, "delivered"), ("carol", "failed")]
    assert task["counts"] == {"delivered": 2, "failed": 1}


def test_list_of_only_separators_is_no_recipient(client: Client) -> None:
    """A list that is only commas and spaces names nobody: 缺少参数 userid_list/dept_id_list (DESIGN §4)."""
    body = {"agent_id": DEMO_AGENT, "userid_list": " , ,", "dept_id_list": "", "msg": MSG}
    assert error(post_json(client, body, client.token())) == (40035, "缺少参数 userid_list/dept_id_list")


@pytest.mark.parametrize("value", [{"alice": 1}, True, [["alice"]], [{"userid": "alice"}], [None]])
def test_list_of_wrong_type(client: Client, value: Any) -> None:
    """A list that is neither a comma string nor an array of ids is 40035 不合法的参数 userid_list."""
    body = {"agent_id": DEMO_AGENT, "userid_list": value, "msg": MSG}
    assert error(post_json(client, body, client.token())) == (40035, "不合法的参数 userid_list")


# -- scalars ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "TRUE", True, " True "])
def test_to_all_user_true(client: Client, value: Any) -> None:
    """to_all_user accepts true or the text "true" in any case (spec §2.1) and sends to everyone."""
    body = {"agent_id": DEMO_AGENT, "to_all_user": value, "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert task["request"] == body
    assert recipients(task, ordered=False) == EVERYONE


@pytest.mark.parametrize("value", ["false", "FALSE", False, "False"])
def test_to_all_user_false(client: Client, value: Any) -> None:
    """to_all_user false (any spelling) sends only to the lists (spec §2.1)."""
    body = {"agent_id": DEMO_AGENT, "to_all_user": value, "userid_list": "alice", "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert recipients(task) == [("alice", "delivered")]


def test_to_all_user_in_a_form(client: Client) -> None:
    """A form body carries booleans as text: to_all_user=TRUE reaches everyone."""
    form = urlencode(
        {"access_token": client.token(), "agent_id": "1001", "to_all_user": "TRUE", "msg": MSG_TEXT}
    )
    task = accepted(client, post(client, form, content_type=FORM))
    assert task["request"] == {"agent_id": "1001", "to_all_user": "TRUE", "msg": MSG_TEXT}
    assert recipients(task, ordered=False) == EVERYONE


@pytest.mark.parametrize("value", ["yes", "1", 1, 0, ["true"], {"v": True}])
def test_to_all_user_malformed(client: Client, value: Any) -> None:
    """Anything but true/false is 40035 不合法的参数 to_all_user (DESIGN §4)."""
    body = {"agent_id": DEMO_AGENT, "to_all_user": value, "userid_list": "alice", "msg": MSG}
    assert error(post_json(client, body, client.token())) == (40035, "不合法的参数 to_all_user")


@pytest.mark.parametrize("agent_id", ["1001", " 1001 ", "+1001", 1001])
def test_integers_as_decimal_strings(client: Client, agent_id: Any) -> None:
    """agent_id and department ids are JSON numbers or decimal text (spec §2.1)."""
    body = {"agent_id": agent_id, "dept_id_list": 3, "msg": MSG}
    task = accepted(client, post_json(client, body, client.token()))
    assert task["request"] == body
    assert task["agent_id"] == DEMO_AGENT
    assert recipients(task) == [(BOB, "delivered"), ("carol", "failed")]


@pytest.mark.parametrize(
    "agent_id",
    [
        "10a",
        "1001.0",
        1001.5,
        "1e3",
        "0x3e9",
        "１００１",
        "²",
        "--1001",
        "99999999999999999999",
        2**63,
        True,
        [1001],
        {"id": 1},
    ],
)
def test_malformed_agent_id(client: Client, agent_id: Any) -> None:
    """agent_id that is not an int64 is 40035 不合法的参数 agent_id, never a crash (DESIGN §4)."""
    body = {"agent_id": agent_id, "userid_list": "alice", "msg": MSG}
    assert error(post_json(client, body, client.token())) == (40035, "不合法的参数 agent_id")


@pytest.mark.parametrize("body", [{"agent_id": ""}, {"agent_id": None}, {}])
def test_missing_agent_id(client: Client, body: dict[str, Any]) -> None:
    """agent_id absent, null or empty is 40035 缺少参数 agent_id (spec §3.1)."""
    assert error(post_json(client, {**body, "userid_list": "alice", "msg": MSG}, client.token())) == (
        40035,
        "缺少参数 agent_id",
    )


def test_malformed_agent_id_in_a_form(client: Client) -> None:
    """The same check applies to form text: agent_id=abc is 40035 不合法的参数 agent_id."""
    form = urlencode(
        {"access_token": client.token(), "agent_id": "abc", "userid_list": "alice", "msg": MSG_TEXT}
    )
    assert error(post(client, form, content_type=FORM)) == (40035, "不合法的参数 agent_id")


# -- unreadable bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ('{"agent_id": 1001, "userid_list": "alice",', "application/json"),
        ("[1001]", "application/json"),
        ('"agent_id"', "application/json"),
        ("agent_id=1001&userid_list=alice", "application/json"),
        ("agent_id=1001&userid_list=alice", None),
        ("agent_id=1001&userid_list=alice", "text/plain"),
        (b'\xef\xbb\xbf{"agent_id": 1001}', "application/json"),
        (b'{"agent_id": "\xff"}', "application/json"),
        ("{'agent_id': 1001}", FORM),
    ],
)
def test_body_not_json(client: Client, raw: bytes | str, content_type: str | None) -> None:
    """A body that is not a JSON object (JSON being the default type) is 40035 不合法的参数 json."""
    response = post(client, raw, content_type=content_type, query={"access_token": client.token()})
    assert error(response) == (40035, "不合法的参数 json")


def test_form_body_not_utf8(client: Client) -> None:
    """A form body that is not UTF-8 text is 40035 不合法的参数 body."""
    raw = b"agent_id=1001&userid_list=alice&msg=\xff\xfe"
    response = post(client, raw, content_type=FORM, query={"access_token": client.token()})
    assert error(response) == (40035, "不合法的参数 body")


def test_multipart_form_body(client: Client) -> None:
    """A multipart/form-data body is read like a urlencoded form, the token included."""
    fields = {
        "access_token": client.token(),
        "agent_id": str(DEMO_AGENT),
        "userid_list": "alice",
        "msg": MSG_TEXT,
    }
    resp = client.http.post(client.base + SEND, files={k: (None, v) for k, v in fields.items()})
    task = accepted(client, resp.json())
    assert task["request"] == {"agent_id": "1001", "userid_list": "alice", "msg": MSG_TEXT}
    assert recipients(task) == [("alice", "delivered")]


def test_unreadable_multipart_body(client: Client) -> None:
    """A multipart body that cannot be parsed is 40035 不合法的参数 body, never a 500 or -1."""
    resp = client.http.post(
        client.base + SEND,
        params={"access_token": client.token()},
        data=b"garbage",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert error(resp.json()) == (40035, "不合法的参数 body")
