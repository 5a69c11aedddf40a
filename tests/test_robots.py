"""Robot one-to-one messages over raw HTTP (spec §5.1–§5.3): batchSend, readStatus, batchRecall.

The error codes reachable through the official SDK are proven one by one in test_robot_sdk; this
module covers the wire itself (envelope, header, path spellings, bodies no SDK sends), the recipient
rules, read states, recall, windows and the per-robot minute limit.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import quote

import pytest
import requests

from conftest import DEMO_ORG
from support import Client, ServerProcess

SEND = "/v1.0/robot/oToMessages/batchSend"
READ = "/v1.0/robot/oToMessages/readStatus"
RECALL = "/v1.0/robot/otoMessages/batchRecall"
BOB = "0356123401"
V1_REQUEST_ID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
MARKDOWN = json.dumps({"title": "Deploy", "text": "**done** 你好"})


def v1_token(c: Client, app_key: str = "demo-key", app_secret: str = "demo-secret") -> str:
    resp = c.http.post(f"{c.base}/v1.0/oauth2/accessToken", json={"appKey": app_key, "appSecret": app_secret})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["accessToken"])


def post(c: Client, path: str, body: Any, token: str | None, **kwargs: Any) -> requests.Response:
    headers = {} if token is None else {"x-acs-dingtalk-access-token": token}
    if isinstance(body, str | bytes):
        return c.http.post(
            c.base + path, data=body, headers={**headers, "Content-Type": "application/json"}, **kwargs
        )
    return c.http.post(c.base + path, json=body, headers=headers, **kwargs)


def send(
    c: Client,
    token: str,
    users: list[str],
    msg_key: str = "sampleMarkdown",
    msg_param: str = MARKDOWN,
    robot: str = "dingdemobot",
) -> requests.Response:
    body = {"robotCode": robot, "userIds": users, "msgKey": msg_key, "msgParam": msg_param}
    return post(c, SEND, body, token)


def sent(c: Client, token: str, users: list[str], **kwargs: Any) -> dict[str, Any]:
    resp = send(c, token, users, **kwargs)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def read_status(c: Client, token: str, key: str, robot: str = "dingdemobot") -> requests.Response:
    return c.http.get(
        c.base + READ,
        params={"robotCode": robot, "processQueryKey": key},
        headers={"x-acs-dingtalk-access-token": token},
    )


def v1_error(resp: requests.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) == {"code", "message", "requestid"}, body
    assert V1_REQUEST_ID.match(body["requestid"])
    assert resp.headers["x-acs-request-id"] == body["requestid"]
    assert resp.headers["content-type"] == "application/json;charset=utf-8"
    return resp.status_code, str(body["code"])


def org_with_second_app_and_corp() -> dict[str, Any]:
    """The demo org plus app 1002 (sees department 3 only) with robot `platbot`, and a corp `acme`
    with its own robot `acmebot`."""
    doc = copy.deepcopy(DEMO_ORG)
    demo = doc["corps"][0]
    demo["apps"].append(
        {
            "agent_id": 1002,
            "name": "Platform",
            "type": "internal",
            "app_key": "plat-key",
            "app_secret": "plat-secret",
            "visible_to": {"dept_ids": [3]},
        }
    )
    demo["robots"].append({"robot_code": "platbot", "agent_id": 1002, "name": "Plat Bot"})
    doc["corps"].append(
        {
            "corp_id": "acme",
            "name": "Acme",
            "users": [{"userid": "alice", "name": "Acme Alice", "dept_ids": [1]}],
            "apps": [
                {
                    "agent_id": 5001,
                    "name": "Acme",
                    "type": "internal",
                    "app_key": "acme-key",
                    "app_secret": "s",
                }
            ],
            "robots": [{"robot_code": "acmebot", "agent_id": 5001, "name": "Acme Bot"}],
        }
    )
    return doc


# -- sending ----------------------------------------------------------------------------------------


def test_batch_send_delivers_and_lists_who_was_not_reached(client: Client) -> None:
    """Unknown and inactive users go to invalidStaffIdList; the others get the message in their inbox."""
    resp = send(client, v1_token(client), ["alice", BOB, "carol", "nobody", "alice", " "])
    body = resp.json()

    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json;charset=utf-8"
    assert V1_REQUEST_ID.match(resp.headers["x-acs-request-id"])
    assert set(body) == {"processQueryKey", "invalidStaffIdList", "flowControlledStaffIdList"}
    assert (body["invalidStaffIdList"], body["flowControlledStaffIdList"]) == (["carol", "nobody"], [])
    key = body["processQueryKey"]
    assert "+" in key and key.endswith("==")
    [message] = client.inbox("alice")
    assert [m["id"] for m in client.inbox(BOB)] and client.inbox("carol") == []
    assert message["source"] == "robot"
    assert (message["msgtype"], message["content"]) == ("sampleMarkdown", json.loads(MARKDOWN))
    assert (message["robot_code"], message["agent_id"], message["process_query_key"]) == (
        "dingdemobot",
        1001,
        key,
    )
    task = client.task(message["task_id"])
    assert task["source"] == "robot" and task["status"] == 2
    assert [(r["userid"], r["outcome"], r["reason"]) for r in task["recipients"]] == [
        ("alice", "delivered", None),
        (BOB, "delivered", None),
        ("carol", "failed", "inactive_user"),
        ("nobody", "invalid", "invalid_user"),
    ]
    assert task["request"]["msgParam"] == MARKDOWN


def test_all_unknown_users_still_succeed(client: Client) -> None:
    body = sent(client, client.token(), ["ghost1", "ghost2"])
    assert body["invalidStaffIdList"] == ["ghost1", "ghost2"]


def test_gettoken_and_v1_tokens_both_work(client: Client) -> None:
    """One token store: a /gettoken token and a /v1.0/oauth2/accessToken token are the same token."""
    assert client.token() == v1_token(client)
    assert sent(client, client.token(), ["alice"])["invalidStaffIdList"] == []


def test_users_outside_the_apps_visibility_are_invalid(client: Client) -> None:
    assert client.load_org(org_with_second_app_and_corp()).status_code == 200
    token = v1_token(client, "plat-key", "plat-secret")

    body = sent(client, token, ["alice", BOB], robot="platbot")

    assert body["invalidStaffIdList"] == ["alice"]
    assert [m["robot_code"] for m in client.inbox(BOB)] == ["platbot"]
    assert client.inbox("alice") == []


@pytest.mark.parametrize(
    ("app_key", "app_secret", "robot"),
    [
        ("demo-key", "demo-secret", "platbot"),  # another app's robot in the same corp
        ("demo-key", "demo-secret", "acmebot"),  # a robot of another corp
        ("plat-key", "plat-secret", "dingdemobot"),
        ("demo-key", "demo-secret", "DINGDEMOBOT"),  # robot codes are case-sensitive
    ],
)
def test_robots_of_other_apps_or_corps_are_unknown(
    client: Client, app_key: str, app_secret: str, robot: str
) -> None:
    assert client.load_org(org_with_second_app_and_corp()).status_code == 200
    resp = send(client, v1_token(client, app_key, app_secret), ["alice"], robot=robot)
    assert v1_error(resp) == (400, "invalidParameter.robotCode.notExsit")


def test_an_isv_token_owns_no_robot(client: Client) -> None:
    resp = send(client, client.isv_token(), ["alice"])
    assert v1_error(resp) == (400, "invalidParameter.robotCode.notExsit")


# -- the wire -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1.0/robot/otoMessages/batchSend"),
        ("GET", "/v1.0/robot/otoMessages/readStatus"),
        ("POST", "/v1.0/robot/oToMessages/batchRecall"),
        ("GET", SEND),
        ("POST", READ),
    ],
)
def test_paths_are_spelled_as_dingtalk_spells_them(client: Client, method: str, path: str) -> None:
    resp = client.http.request(
        method, client.base + path, json={}, headers={"x-acs-dingtalk-access-token": "t"}
    )
    assert v1_error(resp) == (404, "notFound")


@pytest.mark.parametrize("path", [SEND, READ, RECALL])
def test_token_errors_on_every_robot_path(client: Client, path: str) -> None:
    """The token is read only from x-acs-dingtalk-access-token, before anything else."""
    token = client.token()
    method = "GET" if path == READ else "POST"

    def call(headers: dict[str, str], **params: str) -> requests.Response:
        return client.http.request(
            method, client.base + path, data="not json", headers=headers, params=params
        )

    missing = call({})
    in_query = call({}, access_token=token)
    bearer = call({"Authorization": f"Bearer {token}"})
    invalid = call({"x-acs-dingtalk-access-token": "0" * 32})

    assert v1_error(missing) == (400, "AuthenticationFailed.MissingParameter")
    assert missing.json()["message"] == "缺少参数：x-acs-dingtalk-access-token"
    assert v1_error(in_query) == v1_error(bearer) == (400, "AuthenticationFailed.MissingParameter")
    assert v1_error(invalid) == (400, "InvalidAuthentication")
    assert invalid.json()["message"] == "不合法的access_token"


def test_an_expired_token_is_invalid_authentication(client: Client) -> None:
    token = v1_token(client)
    client.advance(7201)
    assert v1_error(send(client, token, ["alice"])) == (400, "InvalidAuthentication")


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"text"', "{"])
def test_a_body_that_is_not_a_json_object_is_msg_body_invalid(client: Client, body: str) -> None:
    resp = post(client, SEND, body, client.token())
    assert v1_error(resp) == (400, "invalidParameter.msgBody.invalid")
    assert resp.json()["message"] == "消息体必须是JSON格式"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("robotCode", 42, "invalidParameter.robotCode.invalid"),
        ("userIds", "alice", "invalidParameter.param.invalid"),
        ("userIds", ["alice", 7], "invalidParameter.param.invalid"),
        ("msgKey", ["sampleText"], "invalidParameter.param.invalid"),
        ("msgParam", {"content": "hi"}, "invalidParameter.param.invalid"),
    ],
)
def test_values_of_the_wrong_json_type(client: Client, field: str, value: Any, code: str) -> None:
    body = {
        "robotCode": "dingdemobot",
        "userIds": ["alice"],
        "msgKey": "sampleText",
        "msgParam": '{"content":"x"}',
    }
    body[field] = value
    assert v1_error(post(client, SEND, body, client.token())) == (400, code)


def test_validation_follows_the_row_order_of_the_error_table(client: Client) -> None:
    """Each request below breaks every rule from one row on; the first broken row answers."""
    token = client.token()
    rows = [
        ({}, "invalidParameter.robotCode.empty"),
        ({"robotCode": "nobot"}, "invalidParameter.robotCode.notExsit"),
        ({"robotCode": "dingdemobot"}, "invalidParameter.userIds.empty"),
        ({"robotCode": "dingdemobot", "userIds": ["u"] * 21}, "invalidParameter.userIds.overMax"),
        ({"robotCode": "dingdemobot", "userIds": ["alice"]}, "invalidParameter.msgKey.empty"),
        (
            {"robotCode": "dingdemobot", "userIds": ["alice"], "msgKey": "nope"},
            "invalidParameter.msgKey.invalid",
        ),
        (
            {
                "robotCode": "dingdemobot",
                "userIds": ["alice"],
                "msgKey": "sampleText",
                "msgParam": "x" * 20000,
            },
            "invalidParameter.msgParam.invalid",
        ),
        (
            {
                "robotCode": "dingdemobot",
                "userIds": ["alice"],
                "msgKey": "sampleText",
                "msgParam": json.dumps({"other": "x" * 15000}),
            },
            "invalidParameter.msgParam.tooLong",
        ),
        (
            {"robotCode": "dingdemobot", "userIds": ["alice"], "msgKey": "sampleText", "msgParam": "{}"},
            "miss.param.text",
        ),
        (
            {"robotCode": "dingdemobot", "userIds": ["alice"], "msgKey": "sampleText"},
            "invalidParameter.param.invalid",
        ),
    ]
    got = [v1_error(post(client, SEND, body, token)) for body, _ in rows]
    assert got == [(400, code) for _, code in rows]


def test_a_msg_param_nested_past_the_json_bound_is_msg_param_invalid(client: Client) -> None:
    """300 levels of nesting get the row's own code, as every other JSON dingbox reads (bound 64)."""
    deep = '{"content": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}"
    body = {"robotCode": "dingdemobot", "userIds": ["alice"], "msgKey": "sampleText", "msgParam": deep}
    assert v1_error(post(client, SEND, body, client.token())) == (400, "invalidParameter.msgParam.invalid")


def test_msg_param_limit_counts_utf8_of_the_canonical_json(client: Client) -> None:
    """5000 Chinese characters escaped by json.dumps are 30,000 bytes as sent but 15,000 + 14 as
    canonical JSON: refused; 4990 (14,970 + 14 bytes) pass, however they were escaped."""
    token = client.token()
    over = send(client, token, ["alice"], "sampleText", json.dumps({"content": "你" * 5000}))
    under = send(client, token, ["alice"], "sampleText", json.dumps({"content": "你" * 4990}))
    assert v1_error(over) == (400, "invalidParameter.msgParam.tooLong")
    assert under.status_code == 200, under.text


# -- read status ----------------------------------------------------------------------------------


def test_read_status_flips_when_the_recipient_reads(client: Client) -> None:
    client.freeze("2026-03-02T10:00:00+08:00")
    token = client.token()
    key = sent(client, token, ["alice", BOB, "nobody"])["processQueryKey"]

    before = read_status(client, token, key)
    client.advance(30)
    [alice] = client.inbox("alice")
    assert client.api("POST", f"/messages/{alice['id']}/read").status_code == 200
    after = read_status(client, token, key)

    assert before.status_code == 200, before.text
    assert before.json() == {
        "sendStatus": "SUCCESS",
        "messageReadInfoList": [
            {"name": "Alice", "userId": "alice", "readStatus": "UNREAD", "readTimestamp": 0},
            {"name": "Bob", "userId": BOB, "readStatus": "UNREAD", "readTimestamp": 0},
        ],
    }
    assert after.json()["messageReadInfoList"][0] == {
        "name": "Alice",
        "userId": "alice",
        "readStatus": "READ",
        "readTimestamp": 1772416830000,  # 2026-03-02T10:00:30+08:00 in milliseconds
    }
    assert after.json()["messageReadInfoList"][1]["readStatus"] == "UNREAD"


def test_read_status_with_an_unencoded_key_finds_nothing(client: Client) -> None:
    """A `+` left unencoded in a query string is a space: the key matches no message, and the answer
    is DingTalk's `invalid.processQueryKey`. Encoded, the same key is found."""
    token = client.token()
    key = sent(client, token, ["alice"])["processQueryKey"]
    headers = {"x-acs-dingtalk-access-token": token}

    raw = client.http.get(f"{client.base}{READ}?robotCode=dingdemobot&processQueryKey={key}", headers=headers)
    encoded = client.http.get(
        f"{client.base}{READ}?robotCode=dingdemobot&processQueryKey={quote(key, safe='')}", headers=headers
    )

    assert v1_error(raw) == (400, "invalid.processQueryKey")
    assert encoded.status_code == 200, encoded.text


def test_read_status_ignores_a_body(client: Client) -> None:
    token = client.token()
    key = sent(client, token, ["alice"])["processQueryKey"]
    resp = client.http.get(
        client.base + READ,
        params={"robotCode": "dingdemobot", "processQueryKey": key},
        headers={"x-acs-dingtalk-access-token": token},
        data="not json",
    )
    assert resp.status_code == 200, resp.text


def test_read_status_errors(client: Client) -> None:
    assert client.load_org(org_with_second_app_and_corp()).status_code == 200
    token = client.token()
    key = sent(client, token, ["alice"])["processQueryKey"]
    other = v1_token(client, "plat-key", "plat-secret")
    headers = {"x-acs-dingtalk-access-token": token}

    def get(**params: str) -> tuple[int, str]:
        return v1_error(client.http.get(client.base + READ, params=params, headers=headers))

    assert get(processQueryKey=key) == (400, "invalidParameter.robotCode.missing")
    assert get(robotCode="dingdemobot") == (400, "invalidParameter.processQueryKey.missing")
    assert get(robotCode="platbot", processQueryKey=key) == (400, "invalidParameter.robotCode.notExsit")
    assert get(robotCode="dingdemobot", processQueryKey="bm9wZQ==") == (400, "invalid.processQueryKey")
    # another app's robot cannot read this key, even with its own robot code
    assert v1_error(read_status(client, other, key, robot="platbot")) == (400, "invalid.processQueryKey")


def test_read_status_and_recall_end_after_24_hours(client: Client) -> None:
    client.freeze("2026-03-02T10:00:00+08:00")
    token = client.token()
    key = sent(client, token, ["alice"])["processQueryKey"]
    client.advance(86400)
    token = client.token()  # the first one expired after 7200 s
    at_24h = read_status(client, token, key)
    client.advance(1)

    late_read = read_status(client, token, key)
    late_recall = post(client, RECALL, {"robotCode": "dingdemobot", "processQueryKeys": [key]}, token)

    assert at_24h.status_code == 200, at_24h.text
    assert v1_error(late_read) == (400, "processQueryKey.expireTime")
    assert late_recall.json() == {"successResult": [], "failedResult": {key: "processQueryKey expired"}}
    assert client.inbox("alice")[0]["recalled"] is False


# -- recall -----------------------------------------------------------------------------------------


def test_batch_recall_recalls_every_inbox_copy(client: Client) -> None:
    token = client.token()
    first = sent(client, token, ["alice", BOB])["processQueryKey"]
    second = sent(client, token, ["alice"], msg_key="sampleText", msg_param='{"content": "keep"}')[
        "processQueryKey"
    ]

    resp = post(client, RECALL, {"robotCode": "dingdemobot", "processQueryKeys": [first, "bm9wZQ=="]}, token)
    again = post(client, RECALL, {"robotCode": "dingdemobot", "processQueryKeys": [first]}, token)

    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "successResult": [first],
        "failedResult": {"bm9wZQ==": "processQueryKey not found"},
    }
    assert again.json() == {"successResult": [first], "failedResult": {}}
    assert {m["process_query_key"]: m["recalled"] for m in client.inbox("alice")} == {
        first: True,
        second: False,
    }
    assert [m["recalled"] for m in client.inbox(BOB)] == [True]
    assert read_status(client, token, first).json()["sendStatus"] == "RECALLED"
    assert read_status(client, token, second).json()["sendStatus"] == "SUCCESS"
    recalled_id = next(m["id"] for m in client.inbox("alice") if m["recalled"])
    assert client.api("POST", f"/messages/{recalled_id}/read").status_code == 409


def test_batch_recall_errors(client: Client) -> None:
    token = client.token()
    key = sent(client, token, ["alice"])["processQueryKey"]

    def recall(body: Any) -> tuple[int, str]:
        return v1_error(post(client, RECALL, body, token))

    assert recall("nope") == (400, "invalidParameter.msgBody.invalid")
    assert recall({"processQueryKeys": [key]}) == (400, "invalidParameter.robotCode.empty")
    assert recall({"robotCode": "dingdemobot", "processQueryKeys": []}) == (
        400,
        "invalidParameter.processQueryKey.missing",
    )
    assert recall({"robotCode": "dingdemobot", "processQueryKeys": [f"k{i}" for i in range(21)]}) == (
        400,
        "invalidParameter.param.invalid",
    )
    assert recall({"robotCode": "nobot", "processQueryKeys": [key]}) == (
        400,
        "invalidParameter.robotCode.notExsit",
    )
    assert client.inbox("alice")[0]["recalled"] is False


# -- the per-robot minute limit -------------------------------------------------------------------


def test_minute_limit_flow_controls_the_rest_while_others_receive(start_server: Any) -> None:
    server: ServerProcess = start_server("--robot-minute-limit", "2")
    c = Client(server.url)
    c.freeze("2026-03-02T10:00:10+08:00")
    token = c.token()

    first = sent(c, token, ["alice", "nobody", BOB, "carol"])
    second = sent(c, token, ["alice"])
    c.advance(50)  # 10:01:00, a new calendar minute
    third = sent(c, token, ["alice", BOB])

    assert (first["invalidStaffIdList"], first["flowControlledStaffIdList"]) == (["nobody", "carol"], [])
    assert second["flowControlledStaffIdList"] == ["alice"]
    assert third["flowControlledStaffIdList"] == []
    assert [m["process_query_key"] for m in c.inbox("alice")] == [
        third["processQueryKey"],
        first["processQueryKey"],
    ]
    assert len(c.inbox(BOB)) == 2


def test_no_minute_limit_by_default(client: Client) -> None:
    token = client.token()
    for _ in range(3):
        assert sent(client, token, ["alice", BOB])["flowControlledStaffIdList"] == []
