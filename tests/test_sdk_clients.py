"""The official SDKs against a real dingbox: both fetch tokens, and dingtalk-sdk's TOP gateway calls work."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

import pytest
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth2_models
from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuth2Client
from alibabacloud_tea_openapi.models import Config
from dingtalk import AppKeyClient
from dingtalk.client.isv import ISVClient, ISVDingTalkClient
from dingtalk.core.exceptions import DingTalkClientException
from dingtalk.model.message import TextBody
from Tea.exceptions import TeaException

from support import DEMO_AGENT, DEMO_ISV_AGENT, Client, ServerProcess

V1_REQUEST_ID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
OAPI_REQUEST_ID = re.compile(r"^[a-z0-9]{13}$")
TOKEN = re.compile(r"^[0-9a-f]{32}$")


class DingboxTop:
    """Sends dingtalk-sdk's TOP gateway calls to dingbox: mix it in before any dingtalk-sdk client class.

    `API_BASE_URL` moves every oapi call (`/gettoken`, `/topapi/...`), but dingtalk-sdk hard-wires its TOP
    gateway calls (`client.message.asyncsend_v2`, `getsendprogress`, `getsendresult`, `recall`) to
    https://eco.taobao.com/router/rest. This override joins the gateway path to `API_BASE_URL` instead, so
    they reach dingbox's `/router/rest`:

        class MyClient(DingboxTop, AppKeyClient):
            API_BASE_URL = "http://127.0.0.1:8610/"

        client = MyClient("dingdemo", "demo-key", "demo-secret")
        task_id = client.message.asyncsend_v2(TextBody("hello"), 1001, ["alice"])
    """

    API_BASE_URL: str

    def _handle_pre_top_request(self, params: dict[str, Any], uri: str) -> tuple[dict[str, Any], str]:
        return super()._handle_pre_top_request(params, urljoin(self.API_BASE_URL, uri))  # type: ignore[misc]


def sdk_client(
    server: ServerProcess, app_key: str = "demo-key", app_secret: str = "demo-secret"
) -> AppKeyClient:
    cls = type("ServerClient", (DingboxTop, AppKeyClient), {"API_BASE_URL": server.url + "/"})
    return cls("dingdemo", app_key, app_secret)


def v1_client(server: ServerProcess) -> OAuth2Client:
    return OAuth2Client(Config(protocol="http", region_id="central", endpoint=f"127.0.0.1:{server.port}"))


def test_dingtalk_sdk_fetches_token(server: ServerProcess, client: Client) -> None:
    """dingtalk-sdk's AppKeyClient gets its token from GET /gettoken and caches it for expires_in."""
    sdk = sdk_client(server)

    answer = sdk.get_access_token()
    token = sdk.access_token

    assert ["access_token", "errcode", "errmsg", "expires_in"] == sorted(answer)
    assert (0, "ok", 7200) == (answer["errcode"], answer["errmsg"], answer["expires_in"])
    assert TOKEN.match(token)
    assert answer["access_token"] == token  # asking again within validity returns the same token
    assert token == sdk.cache.access_token.get()


def test_dingtalk_sdk_bad_secret_raises_40096(server: ServerProcess, client: Client) -> None:
    """A wrong app secret makes dingtalk-sdk raise with /gettoken's flat 40096 (not in its refresh list)."""
    sdk = sdk_client(server, app_secret="wrong")

    with pytest.raises(DingTalkClientException) as caught:
        _ = sdk.access_token

    assert (40096, "不合法的appKey或appSecret") == (caught.value.errcode, caught.value.errmsg)


def test_v1_sdk_fetches_token(server: ServerProcess, client: Client) -> None:
    """alibabacloud-dingtalk gets a token from POST /v1.0/oauth2/accessToken: accessToken, expireIn 7200."""
    response = v1_client(server).get_access_token(
        oauth2_models.GetAccessTokenRequest(app_key="demo-key", app_secret="demo-secret")
    )

    assert 200 == response.status_code
    assert V1_REQUEST_ID.match(response.headers["x-acs-request-id"])
    assert {"accessToken": response.body.access_token, "expireIn": 7200} == response.body.to_map()
    assert client.token() == response.body.access_token  # one token store for both families


def test_v1_sdk_bad_secret_raises_invalid_client(server: ServerProcess, client: Client) -> None:
    """A wrong secret through the v1.0 SDK raises code invalidClientIdOrSecret with statusCode 400."""
    with pytest.raises(TeaException) as caught:
        v1_client(server).get_access_token(
            oauth2_models.GetAccessTokenRequest(app_key="demo-key", app_secret="wrong")
        )

    data = caught.value.data
    assert "invalidClientIdOrSecret" == caught.value.code
    assert {"code", "message", "requestid", "statusCode"} == set(data)
    assert (400, "无效的clientId或者clientSecret") == (data["statusCode"], data["message"])
    assert V1_REQUEST_ID.match(data["requestid"])
    assert (
        f"code: 400, 无效的clientId或者clientSecret request id: {data['requestid']}" == caught.value.message
    )


def test_dingtalk_sdk_top_gateway_calls(server: ServerProcess, client: Client) -> None:
    """dingtalk-sdk's TOP calls (asyncsend_v2, getsendprogress, getsendresult, recall) reach /router/rest."""
    sdk = sdk_client(server)

    task_id = sdk.message.asyncsend_v2(TextBody("deploy finished"), DEMO_AGENT, ["alice"])
    assert isinstance(task_id, int)
    assert 2 == client.task(task_id)["status"]
    progress = sdk.message.getsendprogress(DEMO_AGENT, task_id)
    result = sdk.message.getsendresult(DEMO_AGENT, task_id)
    recalled = sdk.message.recall(DEMO_AGENT, task_id)

    assert {"progress_in_percent": 100, "status": 2} == progress
    assert {
        "invalid_user_id_list": [],
        "forbidden_user_id_list": [],
        "failed_user_id_list": [],
        "read_user_id_list": [],
        "unread_user_id_list": ["alice"],
        "invalid_dept_id_list": [],
        "forbidden_list": [],
    } == result
    assert ["errcode", "errmsg", "request_id"] == sorted(recalled)
    assert (0, "ok") == (recalled["errcode"], recalled["errmsg"])
    assert [True] == [m["recalled"] for m in client.inbox("alice")]


def test_dingtalk_sdk_sends_400_chinese_characters(server: ServerProcess, client: Client) -> None:
    """dingtalk-sdk sends msg as Python's default json.dumps text: 400 Chinese characters arrive as
    2,400 bytes of \\u escapes, but their canonical JSON is about 1,200 bytes: accepted (DESIGN §3)."""
    sdk = sdk_client(server)
    content = "部署完成" * 100

    task_id = sdk.message.asyncsend_v2(TextBody(content), DEMO_AGENT, ["alice"])

    assert 2 == client.task(task_id)["status"]
    assert [{"content": content}] == [m["content"] for m in client.inbox("alice")]


def test_dingtalk_sdk_top_invalid_session(server: ServerProcess, client: Client) -> None:
    """A TOP call whose session is not a token gets error_response code 27, which the SDK raises as is."""
    sdk = sdk_client(server)
    sdk.cache.access_token.set(value="not-a-token", ttl=7200)

    with pytest.raises(DingTalkClientException) as caught:
        sdk.message.asyncsend_v2(TextBody("hello"), DEMO_AGENT, ["alice"])

    body = caught.value.response.json()
    assert (27, "Invalid session") == (caught.value.errcode, caught.value.errmsg)
    assert ["error_response"] == list(body)
    assert ["code", "msg", "request_id", "sub_code"] == sorted(body["error_response"])
    assert (27, "Invalid session", "invalid-sessionkey") == (
        body["error_response"]["code"],
        body["error_response"]["msg"],
        body["error_response"]["sub_code"],
    )
    assert OAPI_REQUEST_ID.match(body["error_response"]["request_id"])
    assert sdk.cache.access_token.get() == "not-a-token"  # 27 is not in the SDK's refresh list


def test_dingtalk_sdk_isv_legacy_corp_token(server: ServerProcess, client: Client) -> None:
    """dingtalk-sdk's ISVClient: get_suite_token, then get_corp_token?suite_access_token=, then a TOP send.

    The SDK sends `suite_ticket: null` when no ticket was pushed to it; dingbox accepts any ticket, none
    included (spec §1.4: test apps may pass any), and ignores `permanent_code` (emulator choice).
    """
    base = {"API_BASE_URL": server.url + "/"}
    isv = type("ServerISVClient", (ISVClient,), base)("suite-demo", "suite-demo-secret")
    corp = type("ServerCorpClient", (DingboxTop, ISVDingTalkClient), base)("dingdemo", isv)

    answer = isv.get_access_token_by_corpid("dingdemo")
    task_id = corp.message.asyncsend_v2(TextBody("welcome"), DEMO_ISV_AGENT, ["alice"])

    assert ["access_token", "errcode", "errmsg", "expires_in"] == sorted(answer)
    assert (0, "ok", 7200) == (answer["errcode"], answer["errmsg"], answer["expires_in"])
    assert client.isv_token() == answer["access_token"] == corp.access_token
    assert 2 == client.task(task_id)["status"]
