"""Every parser bounded and typed: absurd integers, non-ASCII credentials and over-deep JSON get the
surface's own error, never -1, a 500 or a stored document that cannot be written back.

- integers are length-checked before conversion (Python's int() refuses more than 4300 digits);
- credentials are compared as bytes (hmac.compare_digest refuses str beyond ASCII);
- JSON nests at most 64 levels wherever it is read (orjson cannot write more than 254 back).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from support import DEMO_AGENT, MESSAGES, Client, ServerProcess, api_error, oapi_error

HUGE = "9" * 5000  # past Python's 4300-digit int-from-str limit
ABSURD = [HUGE, "1" + "0" * 4400, "9223372036854775808", "-9223372036854775809", "1.5", "abc"]
TOP = "/router/rest"
MAX_DEPTH = 64


def nested(levels: int) -> Any:
    """JSON nesting `levels` containers deep: lists inside lists around one object."""
    value: Any = {"leaf": 1}
    for _ in range(levels - 1):
        value = [value]
    return value


def as_text(value: Any) -> str:
    """A form field's text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def form_post(client: Client, path: str, token: str, fields: dict[str, str]) -> dict[str, Any]:
    resp = client.http.post(f"{client.base}{path}", params={"access_token": token}, data=fields)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


# -- integers -------------------------------------------------------------------------------------


TEXT_MSG = {"msgtype": "text", "text": {"content": "hi"}}
# (path, the integer parameter under test, the rest of a valid call)
INTEGER_PARAMETERS = [
    ("asyncsend_v2", "agent_id", {"userid_list": "alice", "msg": TEXT_MSG}),
    ("getsendprogress", "agent_id", {"task_id": 1}),
    ("getsendprogress", "task_id", {"agent_id": DEMO_AGENT}),
    ("getsendresult", "agent_id", {"task_id": 1}),
    ("getsendresult", "task_id", {"agent_id": DEMO_AGENT}),
    ("recall", "agent_id", {"msg_task_id": 1}),
    ("recall", "msg_task_id", {"agent_id": DEMO_AGENT}),
    ("status_bar/update", "agent_id", {"task_id": 1, "status_value": "done"}),
    ("status_bar/update", "task_id", {"agent_id": DEMO_AGENT, "status_value": "done"}),
]


@pytest.mark.parametrize(("api", "name", "rest"), INTEGER_PARAMETERS)
def test_absurd_integer_parameters_are_40035(
    client: Client, api: str, name: str, rest: dict[str, Any]
) -> None:
    """Integers of any length, beyond int64 or not integers at all: 40035 不合法的参数 <name>, in a JSON
    body (as text and as a number past 64 bits) and in a form body."""
    token = client.token()
    expected = (40035, f"不合法的参数 {name}")
    for value in ABSURD:
        assert oapi_error(client.oapi(MESSAGES + api, {**rest, name: value}, token)) == expected, value
        form = {k: as_text(v) for k, v in {**rest, name: value}.items()}
        assert oapi_error(form_post(client, MESSAGES + api, token, form)) == expected, value
    # a JSON number past 64 bits (orjson reads it as a float)
    past_64_bits = json.dumps({**rest, name: 0}).replace(f'"{name}": 0', f'"{name}": {"9" * 30}')
    raw = client.http.post(
        f"{client.base}{MESSAGES}{api}",
        params={"access_token": token},
        data=past_64_bits,
        headers={"Content-Type": "application/json"},
    ).json()
    assert oapi_error(raw) == expected


TOP_METHODS = [
    ("dingtalk.oapi.message.corpconversation.asyncsend_v2", "agent_id", {"userid_list": "alice"}),
    ("dingtalk.oapi.message.corpconversation.recall", "agent_id", {"msg_task_id": "1"}),
    ("dingtalk.oapi.message.corpconversation.recall", "msg_task_id", {"agent_id": str(DEMO_AGENT)}),
    ("dingtalk.corp.message.corpconversation.getsendprogress", "task_id", {"agent_id": str(DEMO_AGENT)}),
    ("dingtalk.corp.message.corpconversation.getsendresult", "agent_id", {"task_id": "1"}),
]


@pytest.mark.parametrize(("method", "name", "rest"), TOP_METHODS)
def test_absurd_integers_on_the_top_gateway(
    client: Client, method: str, name: str, rest: dict[str, str]
) -> None:
    """On the TOP gateway a bad parameter is answered in the method's own response, as any 40035."""
    token = client.token()
    params = {"method": method, "session": token, "msg": as_text(TEXT_MSG), **rest, name: HUGE}
    body = client.http.post(client.base + TOP, data=params).json()
    key = method.replace(".", "_") + "_response"
    assert set(body) == {key}, body
    answer = body[key]
    if method.startswith("dingtalk.corp."):
        assert answer["result"] == {
            "ding_open_errcode": 40035,
            "error_msg": f"不合法的参数 {name}",
            "success": False,
        }
    else:
        assert (answer["errcode"], answer["errmsg"]) == (40035, f"不合法的参数 {name}")


@pytest.mark.parametrize("bad", ["abc", "1.5", "9223372036854775808", HUGE, "2,x", "²"])
def test_dept_ids_that_are_not_integers_are_refused_at_accept(client: Client, bad: str) -> None:
    """DESIGN §3 rule 2: a department id that is not an int64 is 40035 不合法的参数 dept_id_list."""
    token = client.token()
    body = client.send(token, dept_id_list=bad)
    assert oapi_error(body) == (40035, "不合法的参数 dept_id_list")
    array = client.send(token, dept_id_list=["2", bad])
    assert oapi_error(array) == (40035, "不合法的参数 dept_id_list")


def test_unknown_numeric_dept_ids_are_listed_as_integers(client: Client) -> None:
    """0 and unknown ids are accepted and listed in invalid_dept_id_list as JSON integers, each once
    whatever its spelling ("+99", "0099")."""
    token = client.token()
    task_id = client.sent(token, dept_id_list="0,99,+99,0099,3, 2 ")
    task = client.task(task_id)
    assert task["invalid_dept_ids"] == [0, 99]
    assert client.result(token, task_id)["invalid_dept_id_list"] == [0, 99]
    assert sorted(r["userid"] for r in task["recipients"]) == ["0356123401", "alice", "carol"]


@pytest.mark.parametrize("path", ["/tasks/{}", "/messages/{}"])
@pytest.mark.parametrize("value", [HUGE, "9223372036854775808", "１２"])
def test_absurd_path_ids_are_404(client: Client, path: str, value: str) -> None:
    """An id in an /api/v1 path that cannot be one names nothing: 404 not_found, the API's JSON error."""
    assert api_error(client.api("GET", path.format(value))) == (404, "not_found")
    if path.startswith("/messages"):
        assert api_error(client.api("POST", path.format(value) + "/read")) == (404, "not_found")


def test_query_integers_are_bounded(client: Client) -> None:
    """cursor, limit and before: anything but a bounded integer is 400 invalid_request; a cursor past a
    task's recipient block never reaches the SQL."""
    task_id = client.sent(client.token(), userid_list="alice")
    for cursor in ["9223372036854775807", str(1 << 24), HUGE, "-1", "x"]:
        resp = client.api("GET", f"/tasks/{task_id}", params={"cursor": cursor})
        assert api_error(resp) == (400, "invalid_request"), cursor
    last = client.api("GET", f"/tasks/{task_id}", params={"cursor": (1 << 24) - 1}).json()
    assert (last["recipients"], last["next_cursor"]) == ([], None)
    for name, value in [("limit", HUGE), ("before", HUGE), ("before", "9223372036854775808")]:
        resp = client.api("GET", "/corps/dingdemo/users/alice/messages", params={name: value})
        assert api_error(resp) == (400, "invalid_request"), (name, value)
    assert api_error(client.api("GET", f"/tasks/{task_id}", params={"limit": HUGE})) == (
        400,
        "invalid_request",
    )


# -- credentials ------------------------------------------------------------------------------------


def test_non_ascii_credentials_are_wrong_credentials(client: Client) -> None:
    """A secret or signature beyond ASCII is just a wrong one, on every token endpoint."""
    gettoken = client.http.get(f"{client.base}/gettoken", params={"appkey": "demo-key", "appsecret": "密钥"})
    assert gettoken.json() == {"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}
    suite = client.oapi("/service/get_suite_token", {"suite_key": "suite-demo", "suite_secret": "密钥"})
    assert suite == {"errcode": 40096, "errmsg": "不合法的suiteKey或suiteSecret"}
    signed = client.http.post(
        f"{client.base}/service/get_corp_token",
        params={"accessKey": "suite-demo", "timestamp": "1", "suiteTicket": "t", "signature": "签名"},
        json={"auth_corpid": "dingdemo"},
    )
    assert signed.json() == {"errcode": 40096, "errmsg": "签名校验失败"}
    v1_cases: list[tuple[str, dict[str, str], str]] = [
        ("accessToken", {"appKey": "demo-key", "appSecret": "密钥"}, "invalidClientIdOrSecret"),
        (
            "suiteAccessToken",
            {"suiteKey": "suite-demo", "suiteSecret": "密钥", "suiteTicket": "t"},
            "invalidSuiteKey",
        ),
        (
            "corpAccessToken",
            {"suiteKey": "suite-demo", "suiteSecret": "密钥", "suiteTicket": "t", "authCorpId": "dingdemo"},
            "invalidSuiteKey",
        ),
    ]
    for path, body, code in v1_cases:
        resp = client.http.post(f"{client.base}/v1.0/oauth2/{path}", json=body)
        assert (resp.status_code, resp.json()["code"]) == (400, code), path


def test_non_ascii_auth_is_401(start_server: Callable[..., ServerProcess]) -> None:
    """With --auth, a bearer token or basic password beyond ASCII is 401; a non-ASCII --auth secret
    itself works when the client sends its UTF-8 bytes."""
    secret = "秘密-token"
    base = start_server("--auth", secret).url + "/api/v1/corps"
    utf8 = secret.encode()
    for header in [
        "Bearer é",
        b"Bearer \xe7\xa7\x98",
        "Basic " + base64.b64encode("user:é".encode()).decode(),
        "Basic " + base64.b64encode(b"user:\xff\xfe").decode(),
        "Basic ©",
    ]:
        resp = requests.get(base, headers={"Authorization": header})
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "unauthorized"), header
    assert requests.get(base, headers={"Authorization": b"Bearer " + utf8}).status_code == 200
    basic = b"Basic " + base64.b64encode(b"me:" + utf8)
    assert requests.get(base, headers={"Authorization": basic}).status_code == 200


# -- JSON depth -------------------------------------------------------------------------------------


def test_json_depth_is_bounded_on_oapi(client: Client) -> None:
    """A body, or msg JSON text, nesting past 64 levels is 40035 (不合法的参数 json / msg / the field);
    at 64 levels the extra field is accepted and kept with the request."""
    token = client.token()
    send = MESSAGES + "asyncsend_v2"
    base = {"agent_id": DEMO_AGENT, "userid_list": "alice", "msg": TEXT_MSG}
    assert oapi_error(client.oapi(send, {**base, "extra": nested(300)}, token)) == (
        40035,
        "不合法的参数 json",
    )
    assert oapi_error(client.oapi(send, {**base, "extra": nested(MAX_DEPTH)}, token)) == (
        40035,
        "不合法的参数 json",
    )
    ok = client.oapi(send, {**base, "extra": nested(MAX_DEPTH - 1)}, token)
    assert ok["errcode"] == 0, ok
    assert client.task(ok["task_id"])["request"]["extra"] == nested(MAX_DEPTH - 1)
    deep_text = {**TEXT_MSG, "text": {"content": "hi", "extra": nested(300)}}
    assert oapi_error(client.send(token, as_text(deep_text), userid_list="alice")) == (
        40035,
        "不合法的参数 msg",
    )
    form = {"agent_id": str(DEMO_AGENT), "userid_list": "alice", "msg": as_text(deep_text)}
    assert oapi_error(form_post(client, send, token, form)) == (40035, "不合法的参数 msg")
    oa = {"msgtype": "oa", "oa": {"head": {"text": "h"}, "body": as_text({"x": nested(300)})}}
    assert oapi_error(client.send(token, oa, userid_list="alice")) == (40035, "不合法的参数 msg.oa.body")


def test_json_depth_is_bounded_on_v1_top_and_api(client: Client) -> None:
    """The same bound answers each surface's own bad-body error."""
    v1 = client.http.post(
        f"{client.base}/v1.0/oauth2/accessToken", json={"appKey": "demo-key", "x": nested(300)}
    )
    assert (v1.status_code, v1.json()["code"]) == (400, "invalidParameter.param.invalid")
    top = client.http.post(
        client.base + TOP,
        data={
            "method": "dingtalk.oapi.message.corpconversation.asyncsend_v2",
            "session": client.token(),
            "agent_id": str(DEMO_AGENT),
            "userid_list": "alice",
            "msg": as_text({**TEXT_MSG, "x": nested(300)}),
        },
    ).json()
    answer = top["dingtalk_oapi_message_corpconversation_asyncsend_v2_response"]
    assert (answer["errcode"], answer["errmsg"]) == (40035, "不合法的参数 msg")
    top_body = client.http.post(
        client.base + TOP,
        params={"method": "dingtalk.oapi.message.corpconversation.asyncsend_v2"},
        json={"x": nested(300)},
    ).json()
    assert (top_body["error_response"]["code"], top_body["error_response"]["sub_msg"]) == (
        41,
        "不合法的参数 json",
    )
    org = client.api("PUT", "/org", json={"corps": [], "x": nested(300)})
    assert api_error(org) == (400, "invalid_json")
    advance = client.api("POST", "/clock/advance", json={"seconds": 1, "x": nested(300)})
    assert api_error(advance) == (400, "invalid_json")


def test_clock_stays_within_writable_years(client: Client) -> None:
    """The virtual clock is never set or advanced where its time cannot be written: 400, clock unchanged."""
    for now in ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+14:00"]:
        resp = client.api("PUT", "/clock", json={"now": now, "frozen": True})
        assert api_error(resp) == (400, "invalid_request"), now
    client.freeze("2026-03-01T12:00:00+08:00")
    for seconds in [1e300, -1e300, 2**63]:
        resp = client.api("POST", "/clock/advance", json={"seconds": seconds})
        assert api_error(resp) == (400, "invalid_request"), seconds
    assert client.api("GET", "/clock").json()["now"] == "2026-03-01T12:00:00.000+08:00"
