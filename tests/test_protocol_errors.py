"""The protocol frame's errors (DESIGN §4, spec §1.5–§1.6, §2.2, §8): status, content type, exact envelope."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from support import DEMO_AGENT, MESSAGES, Client

OAPI_REQUEST_ID = re.compile(r"^[a-z0-9]{13}$")
V1_REQUEST_ID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
RID = "<request_id>"  # stands for a request_id of DingTalk's shape in the expected bodies
TOPAPI_JSON = "application/json;charset=UTF-8"
GETTOKEN_JSON = "application/json"
V1_JSON = "application/json;charset=utf-8"
ONE_MIB = 1 << 20
PROGRESS = MESSAGES + "getsendprogress"
TOP_PROGRESS = "dingtalk.corp.message.corpconversation.getsendprogress"


def wrapped(sub_code: str, sub_msg: str) -> dict[str, Any]:
    """DingTalk's topapi gateway wrapping of a token error (spec §1.6, PROBE P8)."""
    return {
        "errcode": 88,
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "errmsg": f"ding talk error[subcode={sub_code},submsg={sub_msg}]",
        "request_id": RID,
    }


def top_error(code: int, msg: str, sub_code: str) -> dict[str, Any]:
    return {"error_response": {"code": code, "msg": msg, "sub_code": sub_code, "request_id": RID}}


def v1_error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "requestid": RID}


@dataclass
class Tokens:
    """A live token, and one that expired on the virtual clock (frozen, so it stays expired)."""

    valid: str
    expired: str


@dataclass
class Case:
    send: Callable[[requests.Session, str, Tokens], requests.Response]
    status: int
    content_type: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def chunks(size: int) -> Iterator[bytes]:
    """A body sent with Transfer-Encoding: chunked, so no Content-Length announces its size."""
    sent = 0
    while sent < size:
        part = min(64 * 1024, size - sent)
        sent += part
        yield b" " * part


PROGRESS_BODY = {"agent_id": DEMO_AGENT, "task_id": 1}
TASK_UNKNOWN = {"errcode": 40035, "errmsg": "不合法的参数 task_id", "request_id": RID}

CASES: dict[str, Case] = {
    # -- tokens on topapi: HTTP 200, errcode 88 with a string sub_code --------------------------------
    "topapi token missing": Case(
        lambda s, b, t: s.post(b + PROGRESS, json=PROGRESS_BODY),
        200,
        TOPAPI_JSON,
        wrapped("40000", "access_token is blank"),
    ),
    "topapi token invalid": Case(
        lambda s, b, t: s.post(b + PROGRESS, params={"access_token": "made-up"}, json=PROGRESS_BODY),
        200,
        TOPAPI_JSON,
        wrapped("40014", "不合法的access_token"),
    ),
    "topapi token expired": Case(
        lambda s, b, t: s.post(b + PROGRESS, params={"access_token": t.expired}, json=PROGRESS_BODY),
        200,
        TOPAPI_JSON,
        wrapped("42001", "access_token超时"),
    ),
    "topapi ignores the x-acs header": Case(
        lambda s, b, t: s.post(
            b + PROGRESS, headers={"x-acs-dingtalk-access-token": t.valid}, json=PROGRESS_BODY
        ),
        200,
        TOPAPI_JSON,
        wrapped("40000", "access_token is blank"),
    ),
    "topapi reads a made-up token from a form body": Case(
        lambda s, b, t: s.post(
            b + PROGRESS, data={"access_token": "made-up", "agent_id": "1001", "task_id": "1"}
        ),
        200,
        TOPAPI_JSON,
        wrapped("40014", "不合法的access_token"),
    ),
    "topapi reads a live token from a form body": Case(
        lambda s, b, t: s.post(
            b + PROGRESS, data={"access_token": t.valid, "agent_id": "1001", "task_id": "1"}
        ),
        200,
        TOPAPI_JSON,
        TASK_UNKNOWN,
    ),
    # -- tokens on the TOP gateway: error_response code 27 -----------------------------------------------
    "TOP session missing": Case(
        lambda s, b, t: s.post(b + "/router/rest", params={"method": TOP_PROGRESS, **PROGRESS_BODY}),
        200,
        TOPAPI_JSON,
        top_error(27, "Invalid session", "invalid-sessionkey"),
    ),
    "TOP session invalid": Case(
        lambda s, b, t: s.post(
            b + "/router/rest", params={"method": TOP_PROGRESS, "session": "made-up", **PROGRESS_BODY}
        ),
        200,
        TOPAPI_JSON,
        top_error(27, "Invalid session", "invalid-sessionkey"),
    ),
    "TOP session expired": Case(
        lambda s, b, t: s.post(
            b + "/router/rest", params={"method": TOP_PROGRESS, "session": t.expired, **PROGRESS_BODY}
        ),
        200,
        TOPAPI_JSON,
        top_error(27, "Invalid session", "session-expired"),
    ),
    # -- credentials ---------------------------------------------------------------------------------------
    "gettoken bad secret": Case(
        lambda s, b, t: s.get(b + "/gettoken", params={"appkey": "demo-key", "appsecret": "wrong"}),
        200,
        GETTOKEN_JSON,
        {"errcode": 40096, "errmsg": "不合法的appKey或appSecret"},
    ),
    "gettoken unknown app key": Case(
        lambda s, b, t: s.get(b + "/gettoken", params={"appkey": "nobody", "appsecret": "demo-secret"}),
        200,
        GETTOKEN_JSON,
        {"errcode": 40096, "errmsg": "不合法的appKey或appSecret"},
    ),
    "gettoken without parameters": Case(
        lambda s, b, t: s.get(b + "/gettoken"),
        200,
        GETTOKEN_JSON,
        {"errcode": 40035, "errmsg": "缺少参数 corpid or appkey"},
    ),
    "gettoken without secret": Case(
        lambda s, b, t: s.get(b + "/gettoken", params={"appkey": "demo-key"}),
        200,
        GETTOKEN_JSON,
        {"errcode": 40035, "errmsg": "缺少参数 corpsecret or appsecret"},
    ),
    "gettoken ignores a form body on GET": Case(
        lambda s, b, t: s.get(b + "/gettoken", data={"appkey": "demo-key", "appsecret": "demo-secret"}),
        200,
        GETTOKEN_JSON,
        {"errcode": 40035, "errmsg": "缺少参数 corpid or appkey"},
    ),
    "v1.0 accessToken bad secret": Case(
        lambda s, b, t: s.post(
            b + "/v1.0/oauth2/accessToken", json={"appKey": "demo-key", "appSecret": "wrong"}
        ),
        400,
        V1_JSON,
        v1_error("invalidClientIdOrSecret", "无效的clientId或者clientSecret"),
    ),
    "v1.0 accessToken without appKey": Case(
        lambda s, b, t: s.post(b + "/v1.0/oauth2/accessToken", json={"appSecret": "demo-secret"}),
        400,
        V1_JSON,
        v1_error("MissingappKey", "appKey is mandatory for this action."),
    ),
    "v1.0 body not a JSON object": Case(
        lambda s, b, t: s.post(b + "/v1.0/oauth2/accessToken", data=b"[1]"),
        400,
        V1_JSON,
        v1_error("invalidParameter.param.invalid", "参数不合法"),
    ),
    # -- parameters on topapi ------------------------------------------------------------------------------
    "topapi missing parameter": Case(
        lambda s, b, t: s.post(b + PROGRESS, params={"access_token": t.valid}, json={"agent_id": DEMO_AGENT}),
        200,
        TOPAPI_JSON,
        {"errcode": 40035, "errmsg": "缺少参数 task_id", "request_id": RID},
    ),
    "topapi wrong type": Case(
        lambda s, b, t: s.post(
            b + PROGRESS, params={"access_token": t.valid}, json={"agent_id": DEMO_AGENT, "task_id": "twelve"}
        ),
        200,
        TOPAPI_JSON,
        {"errcode": 40035, "errmsg": "不合法的参数 task_id", "request_id": RID},
    ),
    "topapi body not JSON": Case(
        lambda s, b, t: s.post(b + PROGRESS, params={"access_token": t.valid}, data=b"task_id: 1"),
        200,
        TOPAPI_JSON,
        {"errcode": 40035, "errmsg": "不合法的参数 json", "request_id": RID},
    ),
    "topapi body not JSON and no token: the token is checked first": Case(
        lambda s, b, t: s.post(b + PROGRESS, data=b"task_id: 1"),
        200,
        TOPAPI_JSON,
        wrapped("40000", "access_token is blank"),
    ),
    # -- body size (default limit 1 MiB) -----------------------------------------------------------------
    "topapi body over 1 MiB, Content-Length": Case(
        lambda s, b, t: s.post(b + PROGRESS, params={"access_token": t.valid}, data=b" " * (ONE_MIB + 1)),
        200,
        TOPAPI_JSON,
        {"errcode": 40035, "errmsg": "请求体过大", "request_id": RID},
    ),
    "topapi body over 1 MiB, chunked": Case(
        lambda s, b, t: s.post(b + PROGRESS, params={"access_token": t.valid}, data=chunks(ONE_MIB + 1)),
        200,
        TOPAPI_JSON,
        {"errcode": 40035, "errmsg": "请求体过大", "request_id": RID},
    ),
    "v1.0 body over 1 MiB, Content-Length": Case(
        lambda s, b, t: s.post(b + "/v1.0/oauth2/accessToken", data=b" " * (ONE_MIB + 1)),
        413,
        V1_JSON,
        v1_error("invalidParameter.param.invalid", "请求体过大"),
    ),
    "v1.0 body over 1 MiB, chunked": Case(
        lambda s, b, t: s.post(b + "/v1.0/oauth2/accessToken", data=chunks(ONE_MIB + 1)),
        413,
        V1_JSON,
        v1_error("invalidParameter.param.invalid", "请求体过大"),
    ),
    # -- routing -------------------------------------------------------------------------------------------
    "unknown topapi API": Case(
        lambda s, b, t: s.post(b + "/topapi/v2/user/notexist", params={"access_token": t.valid}, json={}),
        200,
        TOPAPI_JSON,
        {
            "errcode": 22,
            "sub_msg": "不合法ApiName，ApiName = dingtalk.oapi.v2.user.notexist",
            "errmsg": "Invalid method[submsg=不合法ApiName，ApiName = dingtalk.oapi.v2.user.notexist]",
            "request_id": RID,
        },
    ),
    "unknown path": Case(
        lambda s, b, t: s.get(b + "/no/such/path"),
        200,
        TOPAPI_JSON,
        {"errcode": 404, "errmsg": "请求的URI地址不存在"},
    ),
    "corpAccessToken without /v1.0 is an unknown path": Case(
        lambda s, b, t: s.post(b + "/oauth2/corpAccessToken", json={}),
        200,
        TOPAPI_JSON,
        {"errcode": 404, "errmsg": "请求的URI地址不存在"},
    ),
    "GET / without Accept text/html": Case(
        lambda s, b, t: s.get(b + "/", headers={"accept": "application/json"}),
        200,
        TOPAPI_JSON,
        {"errcode": 404, "errmsg": "请求的URI地址不存在"},
    ),
    "POST on gettoken": Case(
        lambda s, b, t: s.post(b + "/gettoken", params={"appkey": "demo-key", "appsecret": "demo-secret"}),
        200,
        GETTOKEN_JSON,
        {"errcode": 43001, "errmsg": "需要GET请求"},
    ),
    "GET on a topapi API": Case(
        lambda s, b, t: s.get(b + PROGRESS, params={"access_token": t.valid, "task_id": 1}),
        200,
        TOPAPI_JSON,
        {"errcode": 43002, "errmsg": "需要POST请求", "request_id": RID},
    ),
    "unknown v1.0 path": Case(
        lambda s, b, t: s.post(b + "/v1.0/oauth2/nothing", json={}),
        404,
        V1_JSON,
        v1_error("notFound", "Specified api is not found, please check your url and method."),
    ),
    "wrong v1.0 verb": Case(
        lambda s, b, t: s.get(b + "/v1.0/oauth2/accessToken"),
        404,
        V1_JSON,
        v1_error("notFound", "Specified api is not found, please check your url and method."),
    ),
    "TOP without method": Case(
        lambda s, b, t: s.post(b + "/router/rest", params={"session": t.valid}),
        200,
        TOPAPI_JSON,
        {"error_response": {"code": 21, "msg": "Missing method", "request_id": RID}},
    ),
    "TOP unknown method": Case(
        lambda s, b, t: s.post(b + "/router/rest", params={"method": "dingtalk.nothing", "session": t.valid}),
        200,
        TOPAPI_JSON,
        {"error_response": {"code": 22, "msg": "Invalid method", "request_id": RID}},
    ),
    "TOP wrong verb": Case(
        lambda s, b, t: s.put(b + "/router/rest", params={"method": TOP_PROGRESS, "session": t.valid}),
        200,
        TOPAPI_JSON,
        {"error_response": {"code": 9, "msg": "Http Action Not Allowed", "request_id": RID}},
    ),
    "TOP body over 1 MiB, chunked": Case(
        lambda s, b, t: s.post(b + "/router/rest", params={"method": TOP_PROGRESS}, data=chunks(ONE_MIB + 1)),
        200,
        TOPAPI_JSON,
        {
            "error_response": {
                "code": 41,
                "msg": "Invalid arguments",
                "sub_code": "isv.invalid-parameter",
                "sub_msg": "请求体过大",
                "request_id": RID,
            }
        },
    ),
}


@pytest.fixture
def tokens(client: Client) -> Tokens:
    """The app's token issued at a frozen instant, expired 7200 s later, then a new live one."""
    assert (
        client.api("PUT", "/clock", json={"now": "2026-03-02T10:00:00+08:00", "frozen": True}).status_code
        == 200
    )
    expired = client.token()
    assert client.api("POST", "/clock/advance", json={"seconds": 7200}).status_code == 200
    return Tokens(valid=client.token(), expired=expired)


def with_placeholders(body: Any, header_id: str | None) -> Any:
    """The body with every well-shaped request id replaced by RID (v1.0: only the one in the header)."""
    if not isinstance(body, dict):
        return body
    out = {key: with_placeholders(value, header_id) for key, value in body.items()}
    if isinstance(out.get("request_id"), str) and OAPI_REQUEST_ID.match(out["request_id"]):
        out["request_id"] = RID
    if header_id is not None and out.get("requestid") == header_id and V1_REQUEST_ID.match(header_id):
        out["requestid"] = RID
    return out


@pytest.mark.parametrize("name", CASES)
def test_error_envelope(client: Client, tokens: Tokens, name: str) -> None:
    """Each DESIGN §4 row the frame can reach answers DingTalk's status, content type and exact envelope."""
    case = CASES[name]

    resp = case.send(client.http, client.base, tokens)

    header_id = resp.headers.get("x-acs-request-id")
    assert (case.status, case.content_type) == (resp.status_code, resp.headers["content-type"])
    assert case.body == with_placeholders(resp.json(), header_id)
    assert (header_id is not None) == (case.content_type == V1_JSON)


def test_get_root_with_html_accept_redirects_to_ui(client: Client) -> None:
    """GET / from a browser (Accept: text/html) is redirected to the web UI at /ui/."""
    resp = client.http.get(
        client.base + "/", headers={"accept": "text/html,application/xhtml+xml"}, allow_redirects=False
    )

    assert (302, "/ui/") == (resp.status_code, resp.headers["location"])
