"""asyncsend_v2's `msg` as a whole (spec §3.1, §4, DESIGN §3–§4): presence, type, the 2048-byte rule
and content identity, over HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from support import DEMO_AGENT, MESSAGES, Client

SEND = MESSAGES + "asyncsend_v2"


def form_send(client: Client, token: str, msg_text: str, **fields: str) -> dict[str, Any]:
    """The seed's curl style: a form body with the token inside and msg as JSON text."""
    data = {
        "access_token": token,
        "agent_id": str(DEMO_AGENT),
        "userid_list": "alice",
        "msg": msg_text,
        **fields,
    }
    resp = client.http.post(
        client.base + SEND,
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
    )
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def error(body: dict[str, Any]) -> tuple[int, str]:
    assert set(body) == {"errcode", "errmsg", "request_id"}, body
    return body["errcode"], body["errmsg"]


def canonical(msg: dict[str, Any]) -> bytes:
    """DESIGN §3: sorted keys, compact separators, non-ASCII unescaped."""
    return json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chinese(size: int) -> str:
    """Text of exactly `size` UTF-8 bytes, mostly 3-byte characters (so bytes ≠ characters)."""
    return "中" * (size // 3) + "a" * (size % 3)


# -- presence and type of msg -------------------------------------------------------------------------

MSG_ERRORS = [
    ({}, (40035, "缺少参数 msg")),
    ({"msg": None}, (40035, "缺少参数 msg")),
    ({"msg": ""}, (40035, "缺少参数 msg")),
    ({"msg": "{not json"}, (40035, "不合法的参数 msg")),
    ({"msg": "[1, 2]"}, (40035, "不合法的参数 msg")),
    ({"msg": '"text"'}, (40035, "不合法的参数 msg")),
    ({"msg": "   "}, (40035, "不合法的参数 msg")),
    ({"msg": ["text"]}, (40035, "不合法的参数 msg")),
    ({"msg": 42}, (40035, "不合法的参数 msg")),
    ({"msg": True}, (40035, "不合法的参数 msg")),
    ({"msg": {}}, (40035, "缺少参数 msg.msgtype")),
    ({"msg": {"text": {"content": "x"}}}, (40035, "缺少参数 msg.msgtype")),
    ({"msg": {"msgtype": "video", "video": {"media_id": "@x"}}}, (40008, "不合法的消息类型")),
    ({"msg": {"msgtype": "TEXT", "text": {"content": "x"}}}, (40008, "不合法的消息类型")),
    ({"msg": {"msgtype": "actionCard", "actionCard": {}}}, (40008, "不合法的消息类型")),
    ({"msg": {"msgtype": ["text"], "text": {"content": "x"}}}, (40008, "不合法的消息类型")),
    ({"msg": '{"msgtype": "sampleText", "text": {"content": "x"}}'}, (40008, "不合法的消息类型")),
    ({"msg": {"msgtype": "text"}}, (40035, "缺少参数 msg.text")),
    ({"msg": {"msgtype": "text", "text": None}}, (40035, "缺少参数 msg.text")),
    ({"msg": {"msgtype": "text", "text": ""}}, (40035, "缺少参数 msg.text")),
    ({"msg": {"msgtype": "oa", "text": {"content": "x"}}}, (40035, "缺少参数 msg.oa")),
    (
        {"msg": {"msgtype": "action_card", "markdown": {"title": "t", "text": "x"}}},
        (40035, "缺少参数 msg.action_card"),
    ),
    ({"msg": {"msgtype": "text", "text": "plain words"}}, (40035, "不合法的参数 msg.text")),
    ({"msg": {"msgtype": "text", "text": ["x"]}}, (40035, "不合法的参数 msg.text")),
    ({"msg": {"msgtype": "text", "text": '{"content": '}}, (40035, "不合法的参数 msg.text")),
]


@pytest.mark.parametrize(
    ("fields", "expected"), MSG_ERRORS, ids=[f"{i}-{e[1]}" for i, (_, e) in enumerate(MSG_ERRORS)]
)
def test_msg_errors(client: Client, fields: dict[str, Any], expected: tuple[int, str]) -> None:
    """msg missing → 缺少参数 msg; not an object → 不合法的参数 msg; unknown msgtype → 40008 (DESIGN §4)."""
    body = client.oapi(SEND, {"agent_id": DEMO_AGENT, "userid_list": "alice", **fields}, client.token())
    assert error(body) == expected


def test_msg_errors_in_a_form_body(client: Client) -> None:
    """The same errors when msg arrives as form text (spec §2.1 encoding 3)."""
    token = client.token()
    assert error(form_send(client, token, "")) == (40035, "缺少参数 msg")
    assert error(form_send(client, token, "{'msgtype': 'text'}")) == (40035, "不合法的参数 msg")
    assert error(form_send(client, token, '{"msgtype":"link","link":{}}')) == (
        40035,
        "缺少参数 msg.link.messageUrl",
    )


def test_text_msg_object_given_as_json_text(client: Client) -> None:
    """The type object itself may be JSON text, as stringifying clients send it (spec §2.1)."""
    body = client.send(
        client.token(), {"msgtype": "text", "text": '{"content": "文本对象"}'}, userid_list="alice"
    )
    assert body["errcode"] == 0, body
    client.task(body["task_id"], wait=5)
    [message] = client.inbox("alice")
    assert message["content"] == {"content": "文本对象"}


# -- the 2048-byte rule -------------------------------------------------------------------------------


def text_msg(size: int) -> dict[str, Any]:
    """A text message whose canonical JSON is exactly `size` UTF-8 bytes, mostly Chinese."""
    overhead = len(canonical({"msgtype": "text", "text": {"content": ""}}))
    msg = {"text": {"content": chinese(size - overhead)}, "msgtype": "text"}
    assert len(canonical(msg)) == size
    return msg


# every form msg arrives in: the object, its compact or spaced JSON text, Python's default json.dumps
# (ASCII-escaped: six bytes per Chinese character), each in a JSON body or a form field
MSG_FORMS = {
    "object": lambda msg: msg,
    "compact_text": lambda msg: canonical(msg).decode(),
    "spaced_text": lambda msg: json.dumps(msg, indent=4, ensure_ascii=False),
    "ascii_escaped_text": json.dumps,
}


@pytest.mark.parametrize(
    ("way", "form"), [("json", form) for form in MSG_FORMS] + [("form", form) for form in MSG_FORMS][1:]
)
def test_msg_counts_canonical_bytes_however_sent(client: Client, way: str, form: str) -> None:
    """DESIGN §3: the 2048-byte rule counts the canonical JSON's UTF-8 bytes, however msg arrived:
    2048 pass, 2049 are 45002, whatever the text as received weighs. (A form field holds text only.)"""
    token = client.token()

    def send(size: int) -> dict[str, Any]:
        sent = MSG_FORMS[form](text_msg(size))
        if way == "form":
            return form_send(client, token, sent)
        return client.send(token, sent, userid_list="alice")

    at_limit = send(2048)
    assert at_limit["errcode"] == 0, at_limit
    assert error(send(2049)) == (45002, "消息内容超过限制")
    if form == "ascii_escaped_text":
        assert len(json.dumps(text_msg(2048))) > 4000  # as received, twice the limit
    task = client.task(at_limit["task_id"], wait=5)
    assert task["counts"] == {"delivered": 1}
    assert task["request"]["msg"] == MSG_FORMS[form](text_msg(2048))  # kept as received


def test_msg_object_counts_after_coercion(client: Client) -> None:
    """The canonical JSON is taken after coercion: voice duration 10 counts as "10" (DESIGN §3)."""
    token = client.token()

    def voice(total: int) -> dict[str, Any]:
        overhead = len(canonical({"msgtype": "voice", "voice": {"media_id": "", "duration": "10"}}))
        return {
            "msgtype": "voice",
            "voice": {"media_id": "@" + chinese(total - overhead - 1), "duration": 10},
        }

    at_limit, over = voice(2048), voice(2049)
    assert len(canonical(at_limit)) == 2046  # as sent, the integer lacks the two quotes
    assert len(canonical(over)) == 2047
    body = client.send(token, at_limit, userid_list="alice")
    assert body["errcode"] == 0, body
    assert error(client.send(token, over, userid_list="alice")) == (45002, "消息内容超过限制")


@pytest.mark.parametrize("as_text", [False, True])
def test_sibling_objects_never_count(client: Client, as_text: bool) -> None:
    """Objects of other types are not part of the canonical message, as an object or as text (DESIGN §3)."""
    token = client.token()
    msg = {
        "msgtype": "text",
        "text": {"content": "短消息"},
        "markdown": {"title": "t", "text": chinese(3000)},
    }
    body = client.send(token, orjson.dumps(msg).decode() if as_text else msg, userid_list="alice")
    assert body["errcode"] == 0, body
    client.task(body["task_id"], wait=5)
    assert [m["content"] for m in client.inbox("alice")] == [{"content": "短消息"}]


def test_fields_are_read_before_the_size(client: Client) -> None:
    """The canonical JSON exists only once the fields are read: a missing field is reported first."""
    token = client.token()
    msg = {"msgtype": "link", "link": {"messageUrl": "http://x.cn", "title": "t", "text": chinese(2100)}}
    assert error(form_send(client, token, orjson.dumps(msg).decode())) == (40035, "缺少参数 msg.link.picUrl")
    assert error(client.send(token, msg, userid_list="alice")) == (40035, "缺少参数 msg.link.picUrl")


# -- content identity ---------------------------------------------------------------------------------


def outcomes(client: Client, task_id: int) -> list[tuple[str, str, str | None, str | None]]:
    task = client.task(task_id, wait=5)
    assert task["status"] == 2, task
    return [(r["userid"], r["outcome"], r["reason"], r["code"]) for r in task["recipients"]]


DUPLICATE = [("alice", "forbidden", "duplicate_content", "143106")]
DELIVERED = [("alice", "delivered", None, None)]


def test_key_order_and_whitespace_do_not_change_content(client: Client) -> None:
    """Same content to the same user the same day is forbidden 143106, however msg is spelled (DESIGN §3)."""
    token = client.token()
    first = client.send(token, {"text": {"content": "周报已发布"}, "msgtype": "text"}, userid_list="alice")
    second = form_send(client, token, '{ "msgtype" : "text",\n  "text" : { "content" : "周报已发布" } }')
    assert first["errcode"] == 0 and second["errcode"] == 0
    assert outcomes(client, first["task_id"]) == DELIVERED
    assert outcomes(client, second["task_id"]) == DUPLICATE
    result = client.result(token, second["task_id"])
    assert result["forbidden_user_id_list"] == ["alice"]
    assert result["forbidden_list"] == [{"code": "143106", "count": 1, "userid": "alice"}]
    assert len(client.inbox("alice")) == 1


def test_number_and_string_are_the_same_content(client: Client) -> None:
    """voice duration 10 and "10" are one content: coercion happens before identity (DESIGN §3)."""
    token = client.token()
    media = "@lADOADmaWMzazQKA"
    first = client.send(
        token, {"msgtype": "voice", "voice": {"media_id": media, "duration": 10}}, userid_list="alice"
    )
    second = client.send(
        token, {"msgtype": "voice", "voice": {"duration": "10", "media_id": media}}, userid_list="alice"
    )
    third = client.send(
        token, {"msgtype": "voice", "voice": {"duration": "11", "media_id": media}}, userid_list="alice"
    )
    assert outcomes(client, first["task_id"]) == DELIVERED
    assert outcomes(client, second["task_id"]) == DUPLICATE
    assert outcomes(client, third["task_id"]) == DELIVERED


def test_sibling_objects_are_ignored_for_identity(client: Client) -> None:
    """Objects of other types beside msg.<msgtype> do not make the content different (spec §4)."""
    token = client.token()
    plain = {"msgtype": "markdown", "markdown": {"title": "日报", "text": "# 今日"}}
    with_siblings = {**plain, "text": {"content": "ignored"}, "link": {"title": "also ignored"}}
    first = client.send(token, plain, userid_list="alice")
    second = client.send(token, with_siblings, userid_list="alice")
    assert outcomes(client, first["task_id"]) == DELIVERED
    assert outcomes(client, second["task_id"]) == DUPLICATE


def test_different_content_or_user_is_delivered(client: Client) -> None:
    """Only identical content to the same user is forbidden: another text or another user is delivered."""
    token = client.token()
    first = client.send(token, {"msgtype": "text", "text": {"content": "A"}}, userid_list="alice")
    other_text = client.send(token, {"msgtype": "text", "text": {"content": "A "}}, userid_list="alice")
    other_user = client.send(token, {"msgtype": "text", "text": {"content": "A"}}, userid_list="0356123401")
    assert outcomes(client, first["task_id"]) == DELIVERED
    assert outcomes(client, other_text["task_id"]) == DELIVERED
    assert outcomes(client, other_user["task_id"]) == [("0356123401", "delivered", None, None)]


def test_advisory_lengths_are_warnings_on_the_task(client: Client) -> None:
    """Markdown text over the 500 characters DingTalk suggests is accepted, with a warning on the task."""
    token = client.token()
    sent = client.send(
        token, {"msgtype": "markdown", "markdown": {"title": "t", "text": "字" * 501}}, userid_list="alice"
    )

    assert 0 == sent["errcode"]
    task = client.task(sent["task_id"])
    assert ["msg.markdown.text is longer than 500 characters, the length DingTalk suggests"] == task[
        "warnings"
    ]
    assert ["delivered"] == [r["outcome"] for r in task["recipients"]]


def test_isv_app_may_not_send_to_all_users(client: Client) -> None:
    """An ISV app's to_all_user send is refused by the gateway: 88 / sub_code "60011" 没有调用该接口的权限."""
    token = client.isv_token()

    refused = client.send(token, agent_id=2001, to_all_user=True)
    allowed = client.send(token, agent_id=2001, to_all_user=False, userid_list="alice")

    assert len(refused.pop("request_id")) == 13
    assert refused == {
        "errcode": 88,
        "sub_code": "60011",
        "sub_msg": "没有调用该接口的权限",
        "errmsg": "ding talk error[subcode=60011,submsg=没有调用该接口的权限]",
    }
    assert allowed["errcode"] == 0
