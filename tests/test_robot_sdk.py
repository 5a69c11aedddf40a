"""Robot one-to-one through the official `alibabacloud-dingtalk` robot_1_0 client, pointed at dingbox.

One test per error code a caller can reach through the SDK, asserting the exception's `code` and its
`statusCode`; a body that is not JSON (`invalidParameter.msgBody.invalid`) cannot be sent by the SDK
and is proven in test_robots.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from alibabacloud_dingtalk.robot_1_0 import models as robot
from alibabacloud_dingtalk.robot_1_0.client import Client as RobotClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
from Tea.exceptions import TeaException

from support import Client, ServerProcess

BOB = "0356123401"


def robot_client(server: ServerProcess) -> RobotClient:
    return RobotClient(Config(protocol="http", region_id="central", endpoint=f"127.0.0.1:{server.port}"))


def send(
    server: ServerProcess,
    token: str | None,
    *,
    robot_code: Any = "dingdemobot",
    user_ids: Any = ("alice",),
    msg_key: Any = "sampleText",
    msg_param: Any = '{"content": "hello"}',
) -> robot.BatchSendOTOResponseBody:
    headers = robot.BatchSendOTOHeaders()
    headers.x_acs_dingtalk_access_token = token
    request = robot.BatchSendOTORequest(
        robot_code=robot_code,
        user_ids=list(user_ids) if user_ids is not None else None,
        msg_key=msg_key,
        msg_param=msg_param,
    )
    body: robot.BatchSendOTOResponseBody = (
        robot_client(server).batch_send_otowith_options(request, headers, RuntimeOptions()).body
    )
    return body


def read_status(
    server: ServerProcess, token: str, key: str | None, robot_code: str | None = "dingdemobot"
) -> robot.BatchOTOQueryResponseBody:
    headers = robot.BatchOTOQueryHeaders()
    headers.x_acs_dingtalk_access_token = token
    request = robot.BatchOTOQueryRequest(robot_code=robot_code, process_query_key=key)
    body: robot.BatchOTOQueryResponseBody = (
        robot_client(server).batch_otoquery_with_options(request, headers, RuntimeOptions()).body
    )
    return body


def recall(
    server: ServerProcess, token: str, keys: list[str], robot_code: str = "dingdemobot"
) -> robot.BatchRecallOTOResponseBody:
    headers = robot.BatchRecallOTOHeaders()
    headers.x_acs_dingtalk_access_token = token
    request = robot.BatchRecallOTORequest(robot_code=robot_code, process_query_keys=keys)
    body: robot.BatchRecallOTOResponseBody = (
        robot_client(server).batch_recall_otowith_options(request, headers, RuntimeOptions()).body
    )
    return body


def test_sdk_sends_reads_and_recalls(server: ServerProcess, client: Client) -> None:
    token = client.token()

    sent = send(
        server,
        token,
        user_ids=["alice", BOB, "nobody"],
        msg_key="sampleMarkdown",
        msg_param=json.dumps({"title": "Deploy", "text": "**done**"}),
    )
    unread = read_status(server, token, sent.process_query_key)
    [message] = client.inbox("alice")
    assert client.api("POST", f"/messages/{message['id']}/read").status_code == 200
    read = read_status(server, token, sent.process_query_key)
    recalled = recall(server, token, [sent.process_query_key])
    after = read_status(server, token, sent.process_query_key)

    assert "+" in sent.process_query_key  # the SDK URL-encodes it in the readStatus query
    assert (sent.invalid_staff_id_list, sent.flow_controlled_staff_id_list) == (["nobody"], [])
    assert (message["msgtype"], message["content"]) == (
        "sampleMarkdown",
        {"title": "Deploy", "text": "**done**"},
    )
    assert unread.send_status == "SUCCESS"
    assert [(i.user_id, i.name, i.read_status) for i in unread.message_read_info_list] == [
        ("alice", "Alice", "UNREAD"),
        (BOB, "Bob", "UNREAD"),
    ]
    first = read.message_read_info_list[0]
    assert (first.read_status, first.read_timestamp > 1_700_000_000_000) == ("READ", True)
    assert (recalled.success_result, recalled.failed_result) == ([sent.process_query_key], {})
    assert after.send_status == "RECALLED"
    assert client.inbox("alice")[0]["recalled"] is True


def test_sdk_send_with_a_v1_token(server: ServerProcess, client: Client) -> None:
    from alibabacloud_dingtalk.oauth2_1_0 import models as oauth2_models
    from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuth2Client

    oauth = OAuth2Client(Config(protocol="http", region_id="central", endpoint=f"127.0.0.1:{server.port}"))
    token = oauth.get_access_token(
        oauth2_models.GetAccessTokenRequest(app_key="demo-key", app_secret="demo-secret")
    ).body.access_token

    assert send(server, token).invalid_staff_id_list == []


def expect(call: Callable[[], object], code: str, status: int = 400) -> None:
    with pytest.raises(TeaException) as caught:
        call()
    assert (caught.value.code, caught.value.data["statusCode"]) == (code, status)


MSG_PARAM_MISSING = [
    ("sampleText", {}, "miss.param.text"),
    ("sampleText", {"content": " "}, "miss.param.contentOfText"),
    ("sampleMarkdown", {}, "miss.param.markdown"),
    ("sampleMarkdown", {"text": "t"}, "miss.param.markdownTotitle"),
    ("sampleMarkdown", {"title": "t"}, "miss.param.markdownTotext"),
    ("sampleImageMsg", {}, "miss.param.photo"),
    ("sampleImageMsg", {"mediaId": "@lADO"}, "miss.param.photoTophotoUrl"),  # a common mistake
    ("sampleLink", {}, "miss.param.link"),
    ("sampleLink", {"title": "t", "messageUrl": "u"}, "miss.param.textOfLink"),
    ("sampleLink", {"text": "t", "messageUrl": "u"}, "miss.param.titleOfLink"),
    ("sampleLink", {"text": "t", "title": "t", "picUrl": "p"}, "miss.param.messageUrlOfLink"),
    ("sampleActionCard", {}, "miss.param.actionCard"),
    ("sampleActionCard", {"text": "t", "singleTitle": "s", "singleURL": "u"}, "miss.param.actionCardTotitle"),
    ("sampleActionCard", {"title": "t", "singleTitle": "s", "singleURL": "u"}, "miss.param.actionCardTotext"),
    ("sampleActionCard", {"title": "t", "text": "t", "singleURL": "u"}, "miss.param.actionCardTosingleTitle"),
    ("sampleActionCard", {"title": "t", "text": "t", "singleTitle": "s"}, "miss.param.actionCardTosingleUrl"),
    ("sampleActionCard2", {"title": "t", "text": "t"}, "miss.param.actionCardTobtns"),
    (
        "sampleActionCard3",
        {"title": "t", "text": "t", "actionTitle1": "a", "actionURL1": "u", "actionURL2": "u"},
        "miss.param.actionCardTobtnsTotitle",
    ),
    (
        "sampleActionCard2",
        {"title": "t", "text": "t", "actionTitle1": "a", "actionUrl1": "u"},  # actionUrl1: a common mistake
        "miss.param.actionCardTobtnsToactionUrl",
    ),
    ("sampleAudio", {"mediaId": "@m"}, "miss.param.audio"),
    ("sampleFile", {"mediaId": "@m", "fileName": "a.pdf"}, "miss.param.file"),
    ("sampleVideo", {"duration": "10", "videoType": "mp4", "picMediaId": "@p"}, "miss.param.video"),
]


@pytest.mark.parametrize(
    ("msg_key", "param", "code"), MSG_PARAM_MISSING, ids=[c for _, _, c in MSG_PARAM_MISSING]
)
def test_sdk_missing_msg_param_field(
    server: ServerProcess, client: Client, msg_key: str, param: Any, code: str
) -> None:
    token = client.token()
    expect(lambda: send(server, token, msg_key=msg_key, msg_param=json.dumps(param)), code)


SEND_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("AuthenticationFailed.MissingParameter", {"token": None}, "no token header"),
    ("InvalidAuthentication", {"token": "f" * 32}, "unknown token"),
    ("invalidParameter.robotCode.empty", {"robot_code": ""}, "robotCode empty"),
    ("invalidParameter.robotCode.invalid", {"robot_code": 42}, "robotCode not text"),
    ("invalidParameter.robotCode.notExsit", {"robot_code": "nobot"}, "unknown robot"),
    ("invalidParameter.userIds.empty", {"user_ids": []}, "no users"),
    ("invalidParameter.userIds.overMax", {"user_ids": [f"u{i}" for i in range(21)]}, "21 users"),
    ("invalidParameter.msgKey.empty", {"msg_key": None}, "no msgKey"),
    ("invalidParameter.msgKey.invalid", {"msg_key": "sampleActionCard1"}, "no such msgKey"),
    ("invalidParameter.msgParam.invalid", {"msg_param": "content=hello"}, "msgParam not JSON"),
    (
        "invalidParameter.msgParam.tooLong",
        {"msg_param": json.dumps({"content": "x" * 15000})},
        "msgParam too long",
    ),
    ("invalidParameter.param.invalid", {"msg_param": None}, "no msgParam"),
]


@pytest.mark.parametrize(("code", "change", "why"), SEND_ERRORS, ids=[w for _, _, w in SEND_ERRORS])
def test_sdk_batch_send_error(
    server: ServerProcess, client: Client, code: str, change: dict[str, Any], why: str
) -> None:
    token = change["token"] if "token" in change else client.token()
    fields = {k: v for k, v in change.items() if k != "token"}
    expect(lambda: send(server, token, **fields), code)
    assert client.inbox("alice") == []


def test_sdk_read_status_errors(server: ServerProcess, client: Client) -> None:
    client.freeze("2026-03-02T10:00:00+08:00")
    token = client.token()
    key = send(server, token).process_query_key

    expect(lambda: read_status(server, token, key, robot_code=None), "invalidParameter.robotCode.missing")
    expect(lambda: read_status(server, token, None), "invalidParameter.processQueryKey.missing")
    other = key[:-3] + ("B" if key[-3] == "A" else "A") + "=="  # a well-formed key no send was given
    expect(lambda: read_status(server, token, other), "invalid.processQueryKey")
    client.advance(86401)
    late = client.token()
    expect(lambda: read_status(server, late, key), "processQueryKey.expireTime")


def test_sdk_batch_recall_errors(server: ServerProcess, client: Client) -> None:
    token = client.token()
    expect(lambda: recall(server, token, []), "invalidParameter.processQueryKey.missing")
    expect(lambda: recall(server, token, [f"k{i}" for i in range(21)]), "invalidParameter.param.invalid")
    expect(lambda: recall(server, token, ["k"], robot_code="nobot"), "invalidParameter.robotCode.notExsit")
