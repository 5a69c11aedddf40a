"""A NUL character (U+0000) in what a client sends: the same answer on SQLite and PostgreSQL.

PostgreSQL's text cannot hold a NUL and SQLite's can. The rule (docs/api.md, "Choices"): an
identifier (token, userid, corp_id, template id, robot code, processQueryKey) never holds one, so an
identifier holding one names nothing and gets its surface's answer for an unknown id; a list of
recipient userids holding one is refused at accept on oapi (`40035 不合法的参数 userid_list`) and
reported unknown by a robot's batchSend; message content keeps its NULs; an org document with a NUL
in any string is `invalid_org` with the path. Never a 500, a `-1`, or a dispatcher that stalls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from support import DEMO_AGENT, MESSAGES, Client, ServerProcess, oapi_error, store_sql

ISV_AGENT = 2001
TEXT = {"msgtype": "text", "text": {"content": "hello"}}
V1_BATCH_SEND = "/v1.0/robot/oToMessages/batchSend"


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("request_id", "requestid")}


def api_answer(resp: requests.Response) -> tuple[int, dict[str, Any]]:
    return resp.status_code, resp.json()


def top(c: Client, **fields: str) -> dict[str, Any]:
    resp = c.http.post(f"{c.base}/router/rest", data={"v": "2.0", "format": "json", **fields})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def robot(c: Client, token: str, path: str, method: str = "POST", **kwargs: Any) -> requests.Response:
    return c.http.request(method, f"{c.base}{path}", headers={"x-acs-dingtalk-access-token": token}, **kwargs)


# -- tokens ------------------------------------------------------------------------------------------


def test_a_token_holding_a_nul_is_an_unknown_token_on_oapi_and_top(client: Client) -> None:
    unknown = client.send("no-such-token", userid_list="alice")
    holding = client.send("ab\x00cd", userid_list="alice")
    assert (
        without_request_id(holding)
        == without_request_id(unknown)
        == {
            "errcode": 88,
            "sub_code": "40014",
            "sub_msg": "不合法的access_token",
            "errmsg": "ding talk error[subcode=40014,submsg=不合法的access_token]",
        }
    )
    answer = top(
        client,
        method="dingtalk.oapi.message.corpconversation.asyncsend_v2",
        session="ab\x00cd",
        agent_id=str(DEMO_AGENT),
        userid_list="alice",
        msg=json.dumps(TEXT),
    )["error_response"]
    assert without_request_id(answer) == {
        "code": 27,
        "msg": "Invalid session",
        "sub_code": "invalid-sessionkey",
    }


# -- sends -------------------------------------------------------------------------------------------


def test_a_userid_holding_a_nul_is_refused_at_accept_in_every_encoding(client: Client) -> None:
    token = client.token()
    refused = {"errcode": 40035, "errmsg": "不合法的参数 userid_list"}
    assert oapi_error(client.send(token, userid_list="alice,al\x00ice")) == (40035, refused["errmsg"])
    assert oapi_error(client.send(token, userid_list=["alice", "al\x00ice"])) == (40035, refused["errmsg"])
    form = client.http.post(
        f"{client.base}{MESSAGES}asyncsend_v2",
        params={"access_token": token},
        data={"agent_id": str(DEMO_AGENT), "userid_list": "al\x00ice", "msg": json.dumps(TEXT)},
    ).json()
    assert oapi_error(form) == (40035, refused["errmsg"])
    answer = top(
        client,
        method="dingtalk.oapi.message.corpconversation.asyncsend_v2",
        session=token,
        agent_id=str(DEMO_AGENT),
        userid_list="al\x00ice",
        msg=json.dumps(TEXT),
    )["dingtalk_oapi_message_corpconversation_asyncsend_v2_response"]
    assert without_request_id(answer) == refused
    assert client.api("GET", "/tasks").json()["tasks"] == []  # nothing was accepted


def test_sendbytemplate_with_a_nul_in_its_template_id_or_userids(client: Client) -> None:
    token = client.isv_token()
    data = {"name": "Ann", "url": "https://example.com"}
    unknown = client.oapi(
        MESSAGES + "sendbytemplate",
        {"agent_id": ISV_AGENT, "template_id": "tpl-welcome\x00", "userid_list": "alice", "data": data},
        token,
    )
    assert oapi_error(unknown) == (885001, "消息模板不存在")
    refused = client.oapi(
        MESSAGES + "sendbytemplate",
        {"agent_id": ISV_AGENT, "template_id": "tpl-welcome", "userid_list": "al\x00ice", "data": data},
        token,
    )
    assert oapi_error(refused) == (40035, "不合法的参数 userid_list")


def test_message_content_keeps_its_nul(client: Client) -> None:
    token = client.token()
    task_id = client.sent(token, userid_list="alice", msg={"msgtype": "text", "text": {"content": "a\x00b"}})
    assert client.task(task_id)["counts"] == {"delivered": 1}
    [message] = client.inbox("alice")
    assert message["content"] == {"content": "a\x00b"}


# -- robots ------------------------------------------------------------------------------------------


def test_robot_batch_send_reports_a_nul_userid_as_unknown_and_delivers_the_others(client: Client) -> None:
    token = client.token()
    body = {"robotCode": "dingdemobot", "msgKey": "sampleText", "msgParam": json.dumps({"content": "hi"})}
    resp = robot(client, token, V1_BATCH_SEND, json={**body, "userIds": ["al\x00ice", "alice", "nobody"]})
    assert resp.status_code == 200, resp.text
    sent = resp.json()
    assert (sent["invalidStaffIdList"], sent["flowControlledStaffIdList"]) == (["al\x00ice", "nobody"], [])
    client.drain()
    assert [m["source"] for m in client.inbox("alice")] == ["robot"]
    # only NUL userids: the send succeeds and reaches nobody, as with any unknown userids
    resp = robot(client, token, V1_BATCH_SEND, json={**body, "userIds": ["a\x00"]})
    assert (resp.status_code, resp.json()["invalidStaffIdList"]) == (200, ["a\x00"])

    resp = robot(
        client, token, V1_BATCH_SEND, json={**body, "robotCode": "dingdemo\x00bot", "userIds": ["alice"]}
    )
    assert (resp.status_code, without_request_id(resp.json())) == (
        400,
        {
            "code": "invalidParameter.robotCode.notExsit",
            "message": "机器人不存在，请检查企业内是否安装了robotCode对应的机器人",
        },
    )


def test_robot_read_status_and_recall_of_a_key_holding_a_nul(client: Client) -> None:
    token = client.token()
    resp = robot(
        client,
        token,
        "/v1.0/robot/oToMessages/readStatus",
        "GET",
        params={"robotCode": "dingdemobot", "processQueryKey": "k\x00"},
    )
    assert (resp.status_code, without_request_id(resp.json())) == (
        400,
        {"code": "invalid.processQueryKey", "message": "无效的processQueryKey"},
    )
    resp = robot(
        client,
        token,
        "/v1.0/robot/otoMessages/batchRecall",
        json={"robotCode": "dingdemobot", "processQueryKeys": ["k\x00"]},
    )
    assert (resp.status_code, resp.json()) == (
        200,
        {"successResult": [], "failedResult": {"k\x00": "processQueryKey not found"}},
    )


# -- the dingbox API and the UI ----------------------------------------------------------------------


def test_api_paths_and_filters_holding_a_nul_name_nothing(client: Client) -> None:
    client.sent(client.token(), userid_list="alice")
    assert api_answer(client.api("GET", "/corps/dingdemo/users/al%00ice/messages")) == (
        404,
        {
            "error": {
                "code": "unknown_user",
                "message": "corp 'dingdemo' has no user 'al\\x00ice' and no messages for that userid",
            }
        },
    )
    assert api_answer(client.api("GET", "/corps/ding%00demo/users")) == (
        404,
        {"error": {"code": "unknown_corp", "message": "no corp 'ding\\x00demo'"}},
    )
    assert api_answer(client.api("GET", "/corps/ding%00demo/departments")) == (
        404,
        {"error": {"code": "unknown_corp", "message": "no corp 'ding\\x00demo'"}},
    )
    assert api_answer(client.api("GET", "/tasks", params={"corp_id": "ding\x00demo"})) == (
        200,
        {"tasks": [], "next_before": None},
    )
    # a page cursor: in byte order the userids after "al\0x" are those after "al"
    after_nul = client.api("GET", "/corps/dingdemo/users", params={"after": "al\x00x"})
    assert after_nul.status_code == 200
    assert [u["userid"] for u in after_nul.json()["users"]] == ["alice", "carol"]
    assert after_nul.json() == client.api("GET", "/corps/dingdemo/users", params={"after": "al"}).json()


def test_template_api_with_a_nul_in_its_template_id(client: Client) -> None:
    note = {"msgtype": "markdown", "markdown": {"title": "Note", "text": "a note"}}
    no_such = (404, {"error": {"code": "not_found", "message": "no such template"}})
    assert api_answer(client.api("GET", "/templates/tpl-welcome%00")) == no_such
    assert api_answer(client.api("PUT", "/templates/tpl-welcome%00", json={"msg": note})) == no_such
    assert api_answer(client.api("POST", "/templates/tpl-welcome%00/approve")) == no_such
    assert api_answer(client.api("GET", "/templates", params={"corp_id": "ding\x00demo"})) == (
        200,
        {"templates": []},
    )
    assert api_answer(
        client.api("POST", "/templates", json={"template_id": "t\x00", "agent_id": ISV_AGENT, "msg": note})
    ) == (
        400,
        {"error": {"code": "invalid_template", "message": "template_id: must not hold a NUL character"}},
    )
    # a template's text is message content: it keeps its NUL
    edited = {"msgtype": "markdown", "markdown": {"title": "Note", "text": "a\x00b"}}
    resp = client.api("PUT", "/templates/tpl-welcome", json={"msg": edited})
    assert (resp.status_code, resp.json()["msg"]) == (200, edited)


def test_ui_pages_with_a_nul_answer_not_found_or_no_results(client: Client) -> None:
    client.sent(client.token(), userid_list="alice")
    ui = f"{client.base}/ui"
    for path in ("/corps/dingdemo/users/al%00ice", "/corps/ding%00demo/users/alice"):
        resp = client.http.get(ui + path)
        assert resp.status_code == 404, (path, resp.status_code)
        assert "text/html" in resp.headers["content-type"]
    for query in (
        {"q": "hel\x00lo"},
        {"userid": "al\x00ice"},
        {"corp_id": "ding\x00demo"},
        {"sender": "O\x00ps"},
    ):
        resp = client.http.get(f"{ui}/search", params=query)
        assert resp.status_code == 200, (query, resp.status_code)
        assert "<h2>0 messages</h2>" in resp.text, query
    resp = client.http.get(f"{ui}/search", params={"q": "hello"})
    assert "<h2>1 message</h2>" in resp.text  # the search itself works


# -- the org -----------------------------------------------------------------------------------------


def org_with(corp: dict[str, Any]) -> dict[str, Any]:
    return {"corps": [{"corp_id": "acme", "name": "Acme", **corp}]}


def test_an_org_document_with_a_nul_in_any_string_is_invalid_org(client: Client) -> None:
    app = {"agent_id": 5001, "name": "App", "type": "isv", "suite_key": "suite-demo"}
    cases = [
        ({"name": "Ac\x00me"}, "corps[0].name: must not hold a NUL character"),
        (
            {"users": [{"userid": "al\x00ice", "name": "Alice"}]},
            "corps[0].users[0].userid: must not hold a NUL character",
        ),
        (
            {"users": [{"userid": "alice", "name": "Alice", "title": "x\x00"}]},
            "corps[0].users[0].title: must not hold a NUL character",
        ),
        (
            {
                "apps": [app],
                "templates": [
                    {
                        "template_id": "t",
                        "agent_id": 5001,
                        "msg": {"msgtype": "text", "text": {"content": "\x00"}},
                    }
                ],
            },
            "corps[0].templates[0].msg.text.content: must not hold a NUL character",
        ),
    ]
    for corp, message in cases:
        assert api_answer(client.load_org(org_with(corp))) == (
            400,
            {"error": {"code": "invalid_org", "message": message}},
        )
    assert [c["corp_id"] for c in client.api("GET", "/corps").json()["corps"]] == ["dingdemo"]


def test_org_load_refuses_a_nul_with_exit_2(new_store: Callable[[], str], tmp_path: Path) -> None:
    path = tmp_path / "org.json"
    path.write_text(json.dumps(org_with({"users": [{"userid": "al\x00ice", "name": "Alice"}]})))
    done = subprocess.run(
        [sys.executable, "-m", "dingbox", "org", "load", str(path), "--db", new_store()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr
        == f"dingbox: invalid_org: {path}: corps[0].users[0].userid: must not hold a NUL character\n"
    )


# -- dispatch ----------------------------------------------------------------------------------------


def test_a_stored_task_naming_a_nul_userid_ends_and_never_stalls_its_app(
    start_server: Callable[..., ServerProcess], store_backend: str
) -> None:
    """A task accepted before the rule, naming `al\\0ice`, is dispatched without stalling the app: on
    SQLite the userid is decided (invalid_user); on PostgreSQL no row can carry it, nor its
    dispatch_error, so the task ends with no recipients, and the app's next task is delivered."""
    server = start_server("--dispatch-delay", "8")
    c = Client(server.url)
    token = c.token()
    old = c.send(token, userid_list="alice,0356123401")["task_id"]
    store_sql(
        server.db,
        "UPDATE tasks SET userids = ? WHERE task_id = ?",
        ('["al\\u0000ice", "alice"]', old),
        write=True,
    )
    later = c.send(token, userid_list="alice", msg={"msgtype": "text", "text": {"content": "later"}})[
        "task_id"
    ]

    after = c.task(later, wait=40)
    first = c.task(old, wait=0)

    assert (after["status"], after["counts"]) == (2, {"delivered": 1})
    assert first["status"] == 2
    recipients = [(r["userid"], r["outcome"], r["reason"]) for r in first["recipients"]]
    if store_backend == "sqlite":
        assert recipients == [("al\x00ice", "invalid", "invalid_user"), ("alice", "delivered", None)]
    else:
        assert recipients == []
    server.stop()
    if store_backend != "sqlite":
        log = "".join(server.output)
        assert log.count(f"task {old} of app {DEMO_AGENT} cannot be dispatched") == 1, log[-3000:]
        assert log.count(f"task {old}: its dispatch_error rows cannot be written either") == 1, log[-3000:]
