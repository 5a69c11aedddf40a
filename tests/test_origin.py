"""Local-origin safety (DESIGN §5): DNS rebinding and cross-site requests to /api/v1 and /ui/ get 403.

Choices where DESIGN is silent, checked below:
- Host may be a loopback name (localhost, *.localhost, 127.x, [::1]), the bound address, a name given
  with --allowed-host, or, when dingbox listens on a wildcard address, any IP address literal;
- GET /api/v1/health answers any Host, as it answers without --auth: probes need no configuration;
- `Sec-Fetch-Site: same-site` is refused like cross-site: another port of localhost is another app;
- `Origin: null` (sandboxed frames, file: pages) is foreign;
- the Host check comes before --auth, so a rebinding page learns nothing, not even that auth is on;
- DingTalk surfaces (oapi, v1.0, TOP, webhooks) answer any Host and Origin, as DingTalk does.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from support import MESSAGES, Client, ServerProcess, api_error

pytestmark = pytest.mark.store_independent  # Host and Origin checks come before any store access

StartServer = Callable[..., ServerProcess]
FOREIGN_HOST = {"Host": "evil.example:8610"}
CLOCK = {"now": "2026-01-05T09:00:00+08:00", "frozen": True}


def test_foreign_origin_cannot_reset_or_move_the_clock(server: ServerProcess, client: Client) -> None:
    """POST /api/v1/reset and PUT /api/v1/clock (JSON or a CORS-simple text/plain body) from another
    origin are 403 forbidden_origin, and nothing changes."""
    before = client.api("GET", "/clock").json()
    attempts = [
        client.api("POST", "/reset", headers={"Origin": "http://evil.example"}),
        client.api("PUT", "/clock", json=CLOCK, headers={"Origin": "http://evil.example"}),
        client.api(
            "PUT",
            "/clock",
            data=f'{{"now": "{CLOCK["now"]}", "frozen": true}}',
            headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
        ),
        client.api("PUT", "/clock", json=CLOCK, headers={"Origin": "null"}),
        client.api("PUT", "/clock", json=CLOCK, headers={"Origin": "http://localhost:3000"}),
        client.api("PUT", "/clock", json=CLOCK, headers={"Sec-Fetch-Site": "cross-site"}),
        client.api("PUT", "/clock", json=CLOCK, headers={"Sec-Fetch-Site": "same-site"}),
    ]
    for resp in attempts:
        assert api_error(resp) == (403, "forbidden_origin"), resp.text
        assert set(resp.json()["error"]) == {"code", "message"}
    assert client.api("GET", "/clock").json()["frozen"] == before["frozen"] is False


def test_same_origin_browser_requests_and_plain_clients_are_served(
    server: ServerProcess, client: Client
) -> None:
    """A browser on dingbox's own origin (any spelling of the default port) and clients sending no
    Origin change things as before."""
    same = [
        {"Origin": server.url, "Sec-Fetch-Site": "same-origin"},
        {"Origin": f"http://localhost:{server.port}", "Host": f"localhost:{server.port}"},
        {"Origin": "http://localhost", "Host": "localhost:80"},  # what a proxy on port 80 forwards
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        {},  # curl, SDKs, tests
    ]
    for headers in same:
        assert client.api("PUT", "/clock", json=CLOCK, headers=headers).status_code == 200, headers
        assert client.api("POST", "/reset", headers=headers).status_code == 204, headers


def test_reads_from_a_foreign_origin_are_not_refused(server: ServerProcess, client: Client) -> None:
    """GET carries no state change: a foreign Origin on it is served (the browser keeps the answer
    from the page anyway, since dingbox sends no CORS headers)."""
    resp = client.api("GET", "/corps", headers={"Origin": "http://evil.example"})
    assert resp.status_code == 200
    assert "access-control-allow-origin" not in resp.headers


def test_foreign_host_is_refused_on_api_and_ui(server: ServerProcess, client: Client) -> None:
    """A rebinding page's Host (evil.example:8610) gets 403 forbidden_host on /api/v1 and /ui/."""
    for path in ("/api/v1/corps", "/api/v1/clock", "/ui/"):
        resp = requests.get(server.url + path, headers=FOREIGN_HOST, timeout=10)
        assert api_error(resp) == (403, "forbidden_host"), path
    resp = client.api("POST", "/reset", headers=FOREIGN_HOST)
    assert api_error(resp) == (403, "forbidden_host")
    assert requests.get(server.url + "/api/v1/health", headers=FOREIGN_HOST, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:8610", "app.localhost", "127.0.0.1", "127.8.9.10:1", "[::1]:8610"]
)
def test_loopback_hosts_are_served(server: ServerProcess, host: str) -> None:
    """Every loopback spelling of Host reaches the API."""
    resp = requests.get(server.url + "/api/v1/corps", headers={"Host": host}, timeout=10)
    assert resp.status_code == 200, resp.text


def test_dingtalk_surfaces_answer_any_host_and_origin(server: ServerProcess, client: Client) -> None:
    """oapi, v1.0, TOP and webhooks are not checked: DingTalk answers any origin."""
    foreign = {**FOREIGN_HOST, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    got = requests.get(
        f"{server.url}/gettoken",
        params={"appkey": "demo-key", "appsecret": "demo-secret"},
        headers=foreign,
        timeout=10,
    ).json()
    assert got["errcode"] == 0
    token = got["access_token"]
    sent = requests.post(
        f"{server.url}{MESSAGES}asyncsend_v2",
        params={"access_token": token},
        json={"agent_id": 1001, "userid_list": "alice", "msg": {"msgtype": "text", "text": {"content": "x"}}},
        headers=foreign,
        timeout=10,
    ).json()
    assert sent["errcode"] == 0
    v1 = requests.post(
        f"{server.url}/v1.0/oauth2/accessToken",
        json={"appKey": "demo-key", "appSecret": "demo-secret"},
        headers=foreign,
        timeout=10,
    )
    assert v1.status_code == 200 and "accessToken" in v1.json()
    top = requests.post(
        f"{server.url}/router/rest", data={"method": "dingtalk.oapi.unknown"}, headers=foreign, timeout=10
    )
    assert top.status_code == 200 and "error_response" in top.json()
    hook = requests.post(
        f"{server.url}/robot/send",
        params={"access_token": "no-such-hook"},
        json={"msgtype": "text", "text": {"content": "alert"}},
        headers=foreign,
        timeout=10,
    )
    assert hook.status_code == 200 and hook.json()["errcode"] != 0  # DingTalk's own answer, not our 403


def test_allowed_host_flag_and_variable(start_server: StartServer) -> None:
    """--allowed-host (repeatable) and DINGBOX_ALLOWED_HOST (commas) add names; others stay refused."""
    flags = start_server("--allowed-host", "dingbox.test", "--allowed-host", "Box.Example:8610")
    variable = start_server(env={"DINGBOX_ALLOWED_HOST": "dingbox.test, box.example"})
    for server in (flags, variable):
        url = server.url + "/api/v1/corps"
        for host in ("dingbox.test", f"dingbox.test:{server.port}", "box.example:8610"):
            assert requests.get(url, headers={"Host": host}, timeout=10).status_code == 200, host
        assert api_error(requests.get(url, headers=FOREIGN_HOST, timeout=10)) == (403, "forbidden_host")
        own = {"Host": "dingbox.test", "Origin": "http://dingbox.test"}
        assert requests.post(server.url + "/api/v1/reset", headers=own, timeout=10).status_code == 204


def test_host_check_comes_before_auth(start_server: StartServer) -> None:
    """With --auth, a foreign Host is 403 even with the right token; a local one still needs it."""
    server = start_server("--auth", "s3cret")
    url = server.url + "/api/v1/corps"
    bearer = {"Authorization": "Bearer s3cret"}
    assert api_error(requests.get(url, headers={**FOREIGN_HOST, **bearer}, timeout=10)) == (
        403,
        "forbidden_host",
    )
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers=bearer, timeout=10).status_code == 200


def test_wildcard_bind_serves_address_literals_only(start_server: StartServer) -> None:
    """Bound to 0.0.0.0, any IP address literal is the machine's own; names still need --allowed-host."""
    server = start_server("--host", "0.0.0.0")
    url = server.url + "/api/v1/corps"
    assert requests.get(url, headers={"Host": f"192.0.2.7:{server.port}"}, timeout=10).status_code == 200
    assert api_error(requests.get(url, headers=FOREIGN_HOST, timeout=10)) == (403, "forbidden_host")


def run_serve(*args: str) -> tuple[str, str]:
    """Start serve, wait for its announcement, stop it; its stdout and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dingbox", "serve", "--port", "0", "--log-level", "warning", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    time.sleep(0.2)
    proc.terminate()
    out, err = proc.communicate(timeout=15)
    return first + out, err


def test_non_loopback_bind_without_auth_warns(tmp_path: Any) -> None:
    """--host 0.0.0.0 without --auth prints one warning line on stderr; loopback or --auth, none."""
    db = f"sqlite:///{tmp_path / 'w.db'}"
    out, err = run_serve("--host", "0.0.0.0", "--db", db)
    assert out.startswith("ui=")
    assert err.splitlines()[0] == (
        "dingbox: warning: listening on 0.0.0.0 without --auth: anyone who can reach this address"
        " can read and change this dingbox's data"
    )
    assert sum("warning" in line for line in err.splitlines()) == 1
    for args in (["--host", "0.0.0.0", "--auth", "t"], ["--host", "127.0.0.1"], ["--host", "localhost"]):
        out, err = run_serve(*args, "--db", db)
        assert out.startswith("ui=") and "warning: listening" not in err, args
