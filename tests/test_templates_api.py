"""`/api/v1/templates` over real HTTP: list, read, create, replace, approve, disable, and org reloads."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import DEMO_ORG
from support import DEMO_AGENT, DEMO_ISV_AGENT, MESSAGES, Client

WELCOME = {
    "template_id": "tpl-welcome",
    "corp_id": "dingdemo",
    "agent_id": DEMO_ISV_AGENT,
    "status": "approved",
    "msg": {
        "msgtype": "markdown",
        "markdown": {"title": "Welcome ${name}", "text": "Hello ${name}, see ${url}"},
    },
}
NOTE = {"msgtype": "markdown", "markdown": {"title": "Note", "text": "For ${who}"}}


def api_error(resp: Any, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def create(c: Client, **fields: Any) -> dict[str, Any]:
    resp = c.api("POST", "/templates", json={"agent_id": DEMO_ISV_AGENT, "msg": NOTE, **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def send(c: Client, template_id: str) -> dict[str, Any]:
    body = {
        "agent_id": DEMO_ISV_AGENT,
        "template_id": template_id,
        "userid_list": "alice",
        "data": {"who": "A"},
    }
    return c.oapi(MESSAGES + "sendbytemplate", body, c.isv_token())


def test_list_and_read_the_org_files_templates(client: Client) -> None:
    """The demo org's template, listed and read one by one, with every filter."""
    assert client.api("GET", "/templates").json() == {"templates": [WELCOME]}
    assert client.api("GET", "/templates/tpl-welcome").json() == WELCOME
    for query in ({"corp_id": "dingdemo"}, {"agent_id": DEMO_ISV_AGENT}, {"status": "approved"}):
        assert client.api("GET", "/templates", params=query).json() == {"templates": [WELCOME]}
    for query in ({"corp_id": "nowhere"}, {"agent_id": DEMO_AGENT}, {"status": "pending"}):
        assert client.api("GET", "/templates", params=query).json() == {"templates": []}


@pytest.mark.parametrize("query", [{"status": "approving"}, {"agent_id": "x"}])
def test_bad_list_filters_are_400(client: Client, query: dict[str, str]) -> None:
    api_error(client.api("GET", "/templates", params=query), 400, "invalid_request")


def test_created_template_is_pending_until_approved_and_unusable_once_disabled(client: Client) -> None:
    """A template made through the API starts pending (885006), as one made in DingTalk's console
    waits for approval; approve makes it usable, disable makes it 885006 again."""
    made = create(client)
    assert re.fullmatch(r"[0-9a-f]{32}", made["template_id"]), made
    assert made == {
        **made,
        "corp_id": "dingdemo",
        "agent_id": DEMO_ISV_AGENT,
        "status": "pending",
        "msg": NOTE,
    }
    assert (send(client, made["template_id"])["errcode"]) == 885006
    approved = client.api("POST", f"/templates/{made['template_id']}/approve")
    assert approved.json() == {**made, "status": "approved"}
    answer = send(client, made["template_id"])
    assert answer["errcode"] == 0, answer
    assert client.task(answer["task_id"])["status"] == 2
    assert client.inbox("alice")[0]["content"] == {"title": "Note", "text": "For A"}
    disabled = client.api("POST", f"/templates/{made['template_id']}/disable")
    assert disabled.json() == {**made, "status": "disabled"}
    assert send(client, made["template_id"])["errcode"] == 885006
    listed = client.api("GET", "/templates", params={"status": "disabled"}).json()
    assert listed == {"templates": [{**made, "status": "disabled"}]}


def test_create_with_an_id_and_a_status(client: Client) -> None:
    made = create(client, template_id="tpl-note", status="approved")
    assert made == {
        "template_id": "tpl-note",
        "corp_id": "dingdemo",
        "agent_id": DEMO_ISV_AGENT,
        "status": "approved",
        "msg": NOTE,
    }
    assert client.api("GET", "/templates/tpl-note").json() == made
    assert [t["template_id"] for t in client.api("GET", "/corps").json()["corps"][0]["templates"]] == [
        "tpl-note",
        "tpl-welcome",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"agent_id": DEMO_AGENT, "msg": NOTE}, "agent_id: no ISV app 1001; templates belong to ISV apps"),
        ({"agent_id": 9999, "msg": NOTE}, "agent_id: no ISV app 9999; templates belong to ISV apps"),
        ({"agent_id": "2001", "msg": NOTE}, "agent_id: must be an integer"),
        ({"msg": NOTE}, "agent_id: is required"),
        ({"agent_id": DEMO_ISV_AGENT}, "msg: is required"),
        (
            {"agent_id": DEMO_ISV_AGENT, "msg": {"msgtype": "text", "text": {"content": "x"}}},
            "msg.msgtype: must be one of markdown, action_card, oa",
        ),
        ({"agent_id": DEMO_ISV_AGENT, "msg": {"msgtype": "oa"}}, "msg.oa: must be an object"),
        ({"agent_id": DEMO_ISV_AGENT, "msg": "hello"}, "msg: must be a message object"),
        (
            {"agent_id": DEMO_ISV_AGENT, "msg": NOTE, "status": "live"},
            "status: must be approved, pending, disabled",
        ),
        (
            {"agent_id": DEMO_ISV_AGENT, "msg": NOTE, "template_id": ""},
            "template_id: 1 to 64 characters, no surrounding spaces",
        ),
        ({"agent_id": DEMO_ISV_AGENT, "msg": NOTE, "template_id": 7}, "template_id: must be a string"),
        ({"agent_id": DEMO_ISV_AGENT, "msg": NOTE, "title": "x"}, "title: unknown field"),
        ([], "the body must be a JSON object"),
    ],
)
def test_invalid_templates_are_400(client: Client, body: Any, message: str) -> None:
    assert api_error(client.api("POST", "/templates", json=body), 400, "invalid_template") == message
    assert client.api("GET", "/templates").json() == {"templates": [WELCOME]}


def test_a_taken_template_id_is_409(client: Client) -> None:
    """Template ids are global (DESIGN §6): the org file's, and those made before, are taken."""
    create(client, template_id="tpl-note")
    for taken in ("tpl-welcome", "tpl-note"):
        resp = client.api(
            "POST", "/templates", json={"agent_id": DEMO_ISV_AGENT, "msg": NOTE, "template_id": taken}
        )
        assert api_error(resp, 409, "template_exists") == f"template_id {taken!r} is taken"


def test_body_not_json_is_400(client: Client) -> None:
    resp = client.api("POST", "/templates", data=b"{", headers={"Content-Type": "application/json"})
    api_error(resp, 400, "invalid_json")


def test_replace_the_message(client: Client) -> None:
    """PUT replaces the message and keeps the status; the next send uses the new message."""
    resp = client.api("PUT", "/templates/tpl-welcome", json={"msg": NOTE})
    assert resp.json() == {**WELCOME, "msg": NOTE}
    answer = send(client, "tpl-welcome")
    assert answer["errcode"] == 0 and client.task(answer["task_id"])["status"] == 2
    assert client.inbox("alice")[0]["content"] == {"title": "Note", "text": "For A"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"msg": {"msgtype": "image", "image": {"media_id": "@x"}}},
            "msg.msgtype: must be one of markdown, action_card, oa",
        ),
        ({}, "msg: is required"),
        ({"msg": NOTE, "status": "approved"}, "status: unknown field"),
    ],
)
def test_invalid_replacements_are_400(client: Client, body: Any, message: str) -> None:
    resp = client.api("PUT", "/templates/tpl-welcome", json=body)
    assert api_error(resp, 400, "invalid_template") == message
    assert client.api("GET", "/templates/tpl-welcome").json() == WELCOME


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/templates/tpl-nowhere", None),
        ("PUT", "/templates/tpl-nowhere", {"msg": NOTE}),
        ("POST", "/templates/tpl-nowhere/approve", None),
        ("POST", "/templates/tpl-nowhere/disable", None),
    ],
)
def test_unknown_template_is_404(client: Client, method: str, path: str, body: Any) -> None:
    assert api_error(client.api(method, path, json=body), 404, "not_found") == "no such template"


def test_api_changes_last_until_the_corp_is_loaded_again(client: Client) -> None:
    """An org load replaces the corp whole: templates made or changed through the API give way to the
    file's (DESIGN §6); messages already delivered keep their content."""
    create(client, template_id="tpl-note", status="approved")
    client.api("POST", "/templates/tpl-welcome/disable")
    answer = send(client, "tpl-note")
    assert answer["errcode"] == 0 and client.task(answer["task_id"])["status"] == 2
    assert client.load_org(DEMO_ORG).status_code == 200
    assert client.api("GET", "/templates").json() == {"templates": [WELCOME]}
    assert send(client, "tpl-note")["errcode"] == 885001
    assert client.inbox("alice")[0]["content"] == {"title": "Note", "text": "For A"}
