"""Access tokens over real HTTP: one store for both families, 7200 s validity renewed on re-request, ISV."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any
from urllib.parse import quote

import pytest

from support import DEMO_AGENT, DEMO_ISV_AGENT, MESSAGES, Client

T0 = "2026-03-02T10:00:00+08:00"
OAPI_REQUEST_ID = re.compile(r"^[a-z0-9]{13}$")
TOKEN = re.compile(r"^[0-9a-f]{32}$")
SUITE = {
    "suiteKey": "suite-demo",
    "suiteSecret": "suite-demo-secret",
    "authCorpId": "dingdemo",
    "suiteTicket": "t",
}


def gettoken(client: Client) -> tuple[str, int]:
    """A token from GET /gettoken, checking the whole envelope."""
    resp = client.http.get(
        f"{client.base}/gettoken", params={"appkey": "demo-key", "appsecret": "demo-secret"}
    )
    body = resp.json()
    assert (200, ["access_token", "errcode", "errmsg", "expires_in"]) == (resp.status_code, sorted(body))
    assert (0, "ok") == (body["errcode"], body["errmsg"])
    return body["access_token"], body["expires_in"]


def v1_token(client: Client) -> tuple[str, int]:
    """A token from POST /v1.0/oauth2/accessToken, checking the whole body."""
    resp = client.http.post(
        f"{client.base}/v1.0/oauth2/accessToken", json={"appKey": "demo-key", "appSecret": "demo-secret"}
    )
    body = resp.json()
    assert (200, ["accessToken", "expireIn"]) == (resp.status_code, sorted(body))
    return body["accessToken"], body["expireIn"]


ISSUERS = {"gettoken": gettoken, "v1.0": v1_token}


def progress(client: Client, token: str, agent_id: int = DEMO_AGENT) -> dict[str, Any]:
    """getsendprogress of a task that does not exist: 40035 proves the token passed the gateway."""
    return client.oapi(MESSAGES + "getsendprogress", {"agent_id": agent_id, "task_id": 1}, token)


def assert_accepted(client: Client, token: str) -> None:
    body = progress(client, token)
    assert (40035, "不合法的参数 task_id") == (body["errcode"], body["errmsg"]), body


def assert_expired(client: Client, token: str) -> None:
    body = progress(client, token)
    assert OAPI_REQUEST_ID.match(body.pop("request_id"))
    assert {
        "errcode": 88,
        "sub_code": "42001",
        "sub_msg": "access_token超时",
        "errmsg": "ding talk error[subcode=42001,submsg=access_token超时]",
    } == body


def top_progress(client: Client, session: str) -> dict[str, Any]:
    params = {
        "method": "dingtalk.corp.message.corpconversation.getsendprogress",
        "session": session,
        "agent_id": DEMO_AGENT,
        "task_id": 1,
    }
    resp = client.http.post(f"{client.base}/router/rest", params=params)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


# -- one token store for both families --------------------------------------------------------------


def test_gettoken_and_v1_share_the_live_token(client: Client) -> None:
    """/gettoken and /v1.0/oauth2/accessToken mint from one store: the app's live token is the same."""
    first, expires = gettoken(client)
    second, expire_in = v1_token(client)

    assert TOKEN.match(first)
    assert (first, 7200) == (second, expires) == (first, expire_in)


def test_v1_token_works_on_topapi(client: Client) -> None:
    """A v1.0 token works on topapi (40035 task_id, not a token error) and sends a work notification.

    No authenticated v1.0 route exists yet, so the cross-family proof is: the v1.0 token on topapi here,
    and the /gettoken token on the TOP gateway in the next test.
    """
    token, _ = v1_token(client)

    sent = client.send(token, userid_list="alice")

    assert_accepted(client, token)
    assert (0, "ok") == (sent["errcode"], sent["errmsg"])


def test_gettoken_token_works_on_top_gateway(client: Client) -> None:
    """A /gettoken token is a valid TOP `session`: the method answers (task unknown), not error_response."""
    token, _ = gettoken(client)

    body = top_progress(client, token)

    answer = body["dingtalk_corp_message_corpconversation_getsendprogress_response"]
    assert ["dingtalk_corp_message_corpconversation_getsendprogress_response"] == list(body)
    assert {"ding_open_errcode": 40035, "error_msg": "不合法的参数 task_id", "success": False} == answer[
        "result"
    ]
    assert OAPI_REQUEST_ID.match(answer["request_id"])


# -- validity on the virtual clock ------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ISSUERS)
def test_rerequest_returns_same_token_and_renews(client: Client, issuer: str) -> None:
    """Asking again within 7200 s returns the same token with expires_in 7200, and its validity restarts."""
    client.freeze(T0)
    token, _ = ISSUERS[issuer](client)
    client.advance(7199)

    again, expires_in = ISSUERS[issuer](client)
    client.advance(7199)  # 14398 s after issue, 7199 s after the renewal

    assert (token, 7200) == (again, expires_in)
    assert_accepted(client, token)
    client.advance(1)
    assert_expired(client, token)


@pytest.mark.parametrize("issuer", ISSUERS)
def test_token_left_alone_expires_after_7200s(client: Client, issuer: str) -> None:
    """A token works for 7199 s, is rejected with 88/42001 at 7200 s, and the next request mints a new one."""
    client.freeze(T0)
    token, _ = ISSUERS[issuer](client)
    client.advance(7199)
    assert_accepted(client, token)
    client.advance(1)

    assert_expired(client, token)
    fresh, expires_in = ISSUERS[issuer](client)
    assert TOKEN.match(fresh) and fresh != token
    assert 7200 == expires_in
    assert_accepted(client, fresh)
    assert_expired(client, token)  # an expired token never comes back to life


def test_renewal_crosses_families(client: Client) -> None:
    """A /gettoken token is renewed by /v1.0/oauth2/accessToken (one store), and the other way round."""
    client.freeze(T0)
    token, _ = gettoken(client)
    client.advance(7199)
    assert (token, 7200) == v1_token(client)
    client.advance(7199)
    assert (token, 7200) == gettoken(client)
    client.advance(7199)

    assert_accepted(client, token)


def test_fresh_tokens_are_never_rejected(client: Client) -> None:
    """50 tokens in a row, alternating /gettoken and v1.0, each usable at once (spec §1.7 hazard)."""
    seen: set[str] = set()
    for round_ in range(50):
        client.advance(7200)  # the previous token has just expired, on a clock that keeps running
        token, expires_in = (gettoken if round_ % 2 == 0 else v1_token)(client)
        assert_accepted(client, token)
        assert token not in seen and expires_in == 7200
        seen.add(token)


# -- ISV tokens -------------------------------------------------------------------------------------


def corp_access_token(client: Client, **changes: str) -> tuple[int, dict[str, Any]]:
    resp = client.http.post(f"{client.base}/v1.0/oauth2/corpAccessToken", json={**SUITE, **changes})
    return resp.status_code, resp.json()


def v1_error(status: int, body: dict[str, Any]) -> tuple[int, str, str]:
    assert ["code", "message", "requestid"] == sorted(body)
    return status, body["code"], body["message"]


def test_corp_access_token(client: Client) -> None:
    """POST /v1.0/oauth2/corpAccessToken: accessToken + expireIn 7200 for a suite installed in the corp."""
    status, body = corp_access_token(client)

    assert (200, ["accessToken", "expireIn"]) == (status, sorted(body))
    assert TOKEN.match(body["accessToken"]) and body["expireIn"] == 7200
    assert body["accessToken"] == client.isv_token()


def test_corp_access_token_errors(client: Client) -> None:
    """Bad suiteKey → 400 invalidSuiteKey; wrong secret answers the same; a corp without the suite → 400.

    Emulator choices: DingTalk's answer to a wrong suiteSecret and to a corp that never installed the suite
    is unknown; dingbox answers invalidSuiteKey and invalidAuthCorpId 'authCorpId不合法'. A missing
    suiteTicket is MissingsuiteTicket (the SDK marks it required; any value is accepted, spec §1.4).
    """
    assert (400, "invalidSuiteKey", "suitekey不合法") == v1_error(*corp_access_token(client, suiteKey="nope"))
    assert (400, "invalidSuiteKey", "suitekey不合法") == v1_error(*corp_access_token(client, suiteSecret="x"))
    assert (400, "invalidAuthCorpId", "authCorpId不合法") == v1_error(
        *corp_access_token(client, authCorpId="dingnowhere")
    )
    assert (400, "MissingsuiteTicket", "suiteTicket is mandatory for this action.") == v1_error(
        *corp_access_token(client, suiteTicket="")
    )


def signed_query(timestamp: str, ticket: str, secret: str = "suite-demo-secret") -> str:
    """get_corp_token's signature form, the signature Base64(HmacSHA256) and URL-encoded as documented."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{ticket}".encode(), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode()
    encoded = quote(signature, safe="")
    return f"accessKey=suite-demo&timestamp={timestamp}&suiteTicket={ticket}&signature={encoded}"


def plus_signature_timestamp() -> str:
    """A timestamp whose signature holds a '+', so an undecoded query would not verify."""
    for ms in range(1772416800000, 1772416800100):
        query = signed_query(str(ms), "ticket")
        if "%2B" in query:
            return str(ms)
    raise AssertionError("no signature with '+' in 100 tries")


def test_get_corp_token_signature_form(client: Client) -> None:
    """/service/get_corp_token?accessKey&timestamp&suiteTicket&signature issues the corp's ISV token."""
    query = signed_query(plus_signature_timestamp(), "ticket")

    resp = client.http.post(f"{client.base}/service/get_corp_token?{query}", json={"auth_corpid": "dingdemo"})

    body = resp.json()
    assert (200, "application/json") == (resp.status_code, resp.headers["content-type"])
    assert ["access_token", "errcode", "errmsg", "expires_in"] == sorted(body)
    assert (0, "ok", 7200) == (body["errcode"], body["errmsg"], body["expires_in"])
    assert body["access_token"] == client.isv_token()


def test_get_corp_token_bad_signature(client: Client) -> None:
    """A signature made with the wrong secret is refused flat with 40096 (emulator choice: 签名校验失败)."""
    query = signed_query(plus_signature_timestamp(), "ticket", secret="not-the-secret")

    body = client.oapi(f"/service/get_corp_token?{query}", {"auth_corpid": "dingdemo"})

    assert {"errcode": 40096, "errmsg": "签名校验失败"} == body


def test_get_corp_token_unknown_corp(client: Client) -> None:
    """A corp the suite is not installed in answers flat 40089 on both forms (emulator choice: 33001
    would send dingtalk-sdk's ISVClient into an endless token refresh)."""
    query = signed_query(plus_signature_timestamp(), "ticket")
    suite = client.oapi(
        "/service/get_suite_token", {"suite_key": "suite-demo", "suite_secret": "suite-demo-secret"}
    )

    signed = client.oapi(f"/service/get_corp_token?{query}", {"auth_corpid": "dingnowhere"})
    legacy = client.oapi(
        f"/service/get_corp_token?suite_access_token={suite['suite_access_token']}",
        {"auth_corpid": "dingnowhere"},
    )

    assert {"errcode": 40089, "errmsg": "不合法的corpid或corpsecret"} == signed == legacy


def test_get_corp_token_legacy_form(client: Client) -> None:
    """get_suite_token, then get_corp_token?suite_access_token= with auth_corpid and permanent_code."""
    suite = client.oapi(
        "/service/get_suite_token",
        {"suite_key": "suite-demo", "suite_secret": "suite-demo-secret", "suite_ticket": "ticket"},
    )
    assert ["errcode", "errmsg", "expires_in", "suite_access_token"] == sorted(suite)
    assert (0, "ok", 7200) == (suite["errcode"], suite["errmsg"], suite["expires_in"])

    body = client.oapi(
        f"/service/get_corp_token?suite_access_token={suite['suite_access_token']}",
        {"auth_corpid": "dingdemo", "permanent_code": "any"},
    )

    assert ["access_token", "errcode", "errmsg", "expires_in"] == sorted(body)
    assert (0, "ok", 7200) == (body["errcode"], body["errmsg"], body["expires_in"])
    assert body["access_token"] == client.isv_token()


def test_v1_suite_token_serves_the_legacy_form(client: Client) -> None:
    """POST /v1.0/oauth2/suiteAccessToken mints the suite token that get_corp_token's legacy form takes."""
    suite = {k: v for k, v in SUITE.items() if k != "authCorpId"}
    resp = client.http.post(f"{client.base}/v1.0/oauth2/suiteAccessToken", json=suite)
    body = resp.json()
    assert (200, ["accessToken", "expireIn"]) == (resp.status_code, sorted(body))

    corp = client.oapi(
        f"/service/get_corp_token?suite_access_token={body['accessToken']}", {"auth_corpid": "dingdemo"}
    )

    assert (0, 7200) == (corp["errcode"], body["expireIn"])
    assert corp["access_token"] == client.isv_token()


def test_get_corp_token_legacy_form_errors(client: Client) -> None:
    """Legacy form: an unknown suite token is flat 40014 (dingtalk-sdk's ISVClient then refreshes it)."""
    app_token = client.token()
    unknown = client.oapi("/service/get_corp_token?suite_access_token=nope", {"auth_corpid": "dingdemo"})
    not_suite = client.oapi(
        f"/service/get_corp_token?suite_access_token={app_token}", {"auth_corpid": "dingdemo"}
    )
    bad_suite = client.oapi("/service/get_suite_token", {"suite_key": "suite-demo", "suite_secret": "x"})

    assert {"errcode": 40014, "errmsg": "不合法的access_token"} == unknown == not_suite
    assert {"errcode": 40096, "errmsg": "不合法的suiteKey或suiteSecret"} == bad_suite


def test_isv_token_speaks_for_its_suite_agents_only(client: Client) -> None:
    """An ISV corp token sends as agent 2001 (its suite's app); agent 1001 gets 400002 agentId不合法."""
    token = client.isv_token()

    sent = client.send(token, agent_id=DEMO_ISV_AGENT, userid_list="alice")
    foreign = client.send(token, agent_id=DEMO_AGENT, userid_list="alice")

    assert (0, "ok") == (sent["errcode"], sent["errmsg"])
    assert OAPI_REQUEST_ID.match(foreign.pop("request_id"))
    assert {"errcode": 400002, "errmsg": "agentId不合法"} == foreign


def test_suite_token_is_not_a_corp_token(client: Client) -> None:
    """A suite access token only asks for corp tokens: on topapi it is 88/40014 (emulator choice)."""
    suite = client.oapi(
        "/service/get_suite_token", {"suite_key": "suite-demo", "suite_secret": "suite-demo-secret"}
    )

    body = progress(client, suite["suite_access_token"], DEMO_ISV_AGENT)

    assert (88, "40014") == (body["errcode"], body["sub_code"])
