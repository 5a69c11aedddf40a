"""Settings (DESIGN §2, §5): each row has a serve flag and a working DINGBOX_* variable; --auth; controls.

Choices where DESIGN is silent, checked below:
- GET /api/v1/health answers without the --auth token, so load balancers and probes need no secret;
- basic auth takes any user name: only the password is compared with the token;
- with --auth set, GET /api/v1/corps leaves out `app_secret` (suite secrets are never listed there);
- the DingTalk surfaces (/gettoken, /topapi, /v1.0) ignore --auth: they have their own tokens.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from dingbox.settings import SETTINGS
from support import Client, ServerProcess, free_port

pytestmark = pytest.mark.store_independent  # how settings reach serve, whichever store it serves

StartServer = Callable[..., ServerProcess]
UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "this dingbox is protected by --auth"}}
FORBIDDEN = {
    "error": {
        "code": "forbidden",
        "message": "test controls answer loopback clients only; start with --test-controls",
    }
}


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("DINGBOX_")}, **extra}


def test_every_setting_has_a_serve_flag_and_variable() -> None:
    """Each row of the settings table is a `serve` flag whose help names its DINGBOX_* variable."""
    done = subprocess.run(
        [sys.executable, "-m", "dingbox", "serve", "--help"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    text = " ".join(done.stdout.split())  # help wraps lines; compare word sequences
    assert len(SETTINGS) >= 14
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        assert f" {flag} " in text, flag
        assert f"[env {setting.env}]" in text, setting.env
        assert setting.env == "DINGBOX_" + setting.name.upper()


def send_many(client: Client, count: int) -> dict[str, Any]:
    userids = ",".join(f"u{i:04d}" for i in range(count))
    return client.send(client.token(), userid_list=userids)


def test_dingbox_limits_variable_changes_the_profile(start_server: StartServer) -> None:
    """DINGBOX_LIMITS=lenient lifts userid_list to 5000; the --limits flag wins over the variable."""
    lenient = Client(start_server(env={"DINGBOX_LIMITS": "lenient"}).url)
    assert send_many(lenient, 101)["errcode"] == 0
    strict = Client(start_server("--limits", "strict", env={"DINGBOX_LIMITS": "lenient"}).url)
    body = send_many(strict, 101)
    assert (body["errcode"], body["errmsg"]) == (40032, "不合法的UserID列表长度")


def test_dingbox_auth_variable_protects_the_api(start_server: StartServer) -> None:
    """DINGBOX_AUTH makes /api/v1/corps answer 401 without the token and 200 with it (bearer or basic)."""
    server = start_server(env={"DINGBOX_AUTH": "env-token"})
    url = f"{server.url}/api/v1/corps"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer env-token"}, timeout=10).status_code == 200
    assert requests.get(url, auth=("anyone", "env-token"), timeout=10).status_code == 200


def test_dingbox_dispatchers_zero_only_accepts(start_server: StartServer) -> None:
    """DINGBOX_DISPATCHERS=0 accepts tasks without dispatching them: the task stays pending."""
    server = start_server(env={"DINGBOX_DISPATCHERS": "0"})
    client = Client(server.url)
    task_id = client.send(client.token(), userid_list="alice")["task_id"]
    assert client.task(task_id, wait=1)["status"] == 0
    health = client.api("GET", "/health").json()
    assert (health["status"], health["pending_tasks"]) == ("ok", 1)


def test_dingbox_no_demo_and_test_controls_variables(start_server: StartServer) -> None:
    """DINGBOX_NO_DEMO=1 leaves an empty store empty; DINGBOX_TEST_CONTROLS=true opens the controls to all."""
    server = start_server("--host", "0.0.0.0", env={"DINGBOX_NO_DEMO": "1", "DINGBOX_TEST_CONTROLS": "true"})
    assert Client(server.url).api("GET", "/corps").json() == {"corps": []}
    assert "corp_id" not in server.info
    address = non_loopback_ip() or "127.0.0.1"
    assert requests.post(f"http://{address}:{server.port}/api/v1/reset", timeout=10).status_code == 204


def test_dingbox_body_limit_variable(start_server: StartServer) -> None:
    """DINGBOX_BODY_LIMIT bounds request bodies: a larger body is 40035 请求体过大."""
    client = Client(start_server(env={"DINGBOX_BODY_LIMIT": "2048"}).url)
    body = client.send(
        client.token(), msg={"msgtype": "text", "text": {"content": "x" * 3000}}, userid_list="alice"
    )
    assert (body["errcode"], body["errmsg"]) == (40035, "请求体过大")


def test_dingbox_batch_variables_pace_dispatch(start_server: StartServer) -> None:
    """DINGBOX_BATCH_SIZE=1 with DINGBOX_BATCH_PAUSE=2 leaves a two-recipient task half done for a while."""
    client = Client(start_server(env={"DINGBOX_BATCH_SIZE": "1", "DINGBOX_BATCH_PAUSE": "2"}).url)
    task_id = client.send(client.token(), userid_list="alice,0356123401")["task_id"]
    deadline = time.monotonic() + 30  # generous: a loaded CI machine starts dispatch late
    while (task := client.task(task_id, wait=0))["counts"].get(
        "delivered", 0
    ) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (task["status"], task["counts"]) == (1, {"delivered": 1})
    assert client.task(task_id, wait=10)["counts"] == {"delivered": 2}


def test_connection_variables(start_server: StartServer) -> None:
    """DINGBOX_HEADER_TIMEOUT, _BODY_TIMEOUT, _KEEP_ALIVE_TIMEOUT and _MAX_CONNECTIONS bound connections."""
    server = start_server(
        env={
            "DINGBOX_HEADER_TIMEOUT": "1",
            "DINGBOX_BODY_TIMEOUT": "1",
            "DINGBOX_KEEP_ALIVE_TIMEOUT": "1",
            "DINGBOX_MAX_CONNECTIONS": "4",
        }
    )

    def closes_within(sock: socket.socket, seconds: float) -> bytes:
        started = time.monotonic()
        sock.settimeout(seconds + 2)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert time.monotonic() - started < seconds + 2  # plus the quarter-second sweep, on a loaded machine
        return data

    address = ("127.0.0.1", server.port)
    with socket.create_connection(address) as no_headers, socket.create_connection(address) as no_body:
        no_body.sendall(b"PUT /api/v1/org HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\n\r\n{")
        with socket.create_connection(address) as idle:
            idle.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            with socket.create_connection(address) as fourth, socket.create_connection(address) as fifth:
                assert closes_within(fifth, 1).startswith(b"HTTP/1.1 503 ")
                fourth.close()
                assert b"HTTP/1.1 200 " in closes_within(idle, 1)  # kept alive 1 s, then closed
        assert closes_within(no_headers, 1).startswith(b"HTTP/1.1 408 ")
        assert closes_within(no_body, 1).startswith(b"HTTP/1.1 408 ")


def test_dingbox_allowed_host_variable(start_server: StartServer) -> None:
    """DINGBOX_ALLOWED_HOST names (commas between) are served on /api/v1; other names are 403."""
    url = start_server(env={"DINGBOX_ALLOWED_HOST": "a.test,b.test"}).url + "/api/v1/corps"
    assert [requests.get(url, headers={"Host": h}, timeout=10).status_code for h in ("a.test", "b.test")] == [
        200,
        200,
    ]
    assert requests.get(url, headers={"Host": "c.test"}, timeout=10).status_code == 403


def test_host_port_db_and_log_level_from_variables(tmp_path: Path) -> None:
    """DINGBOX_HOST, DINGBOX_PORT, DINGBOX_DB and DINGBOX_LOG_LEVEL configure a serve given no flags."""
    port = free_port()
    db = tmp_path / "from-env.db"
    env = clean_env(
        DINGBOX_HOST="127.0.0.1",
        DINGBOX_PORT=str(port),
        DINGBOX_DB=f"sqlite:///{db}",
        DINGBOX_LOG_LEVEL="debug",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dingbox", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        # our own announcement (after uvicorn's log lines), not another server's port
        while not any(line.startswith("ui=") for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        while time.monotonic() < deadline:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    assert f"ui=http://127.0.0.1:{port}/ui/\n" in lines
    assert db.exists()
    assert any('"GET /api/v1/health HTTP/1.1" 200' in line for line in lines)  # debug turns the access log on


# -- --auth -------------------------------------------------------------------------------------------


def test_auth_protects_api_and_ui(start_server: StartServer) -> None:
    """--auth: /api/v1 and /ui/ answer 401 without the token or with a wrong one; bearer and basic pass."""
    server = start_server("--auth", "s3cret")
    for path in ("/api/v1/corps", "/ui/", "/api/v1/clock"):
        url = server.url + path
        bare = requests.get(url, timeout=10)
        assert (bare.status_code, bare.json()) == (401, UNAUTHORIZED)
        assert bare.headers["www-authenticate"] == 'Bearer realm="dingbox", Basic realm="dingbox"'
        assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert requests.get(url, auth=("admin", "wrong"), timeout=10).status_code == 401
        garbled = {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe").decode()}
        assert requests.get(url, headers=garbled, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=10).status_code == 200
        assert requests.get(url, auth=("admin", "s3cret"), timeout=10).status_code == 200
    assert requests.get(server.url + "/api/v1/health", timeout=10).status_code == 200


def test_auth_hides_app_secrets(start_server: StartServer, server: ServerProcess) -> None:
    """GET /api/v1/corps lists app secrets without --auth and leaves them out with it."""
    open_apps = Client(server.url).api("GET", "/corps").json()["corps"][0]["apps"]
    assert [a.get("app_secret") for a in open_apps] == ["demo-secret", None]
    assert "app_secret" in open_apps[0]
    guarded = start_server("--auth", "s3cret")
    apps = requests.get(f"{guarded.url}/api/v1/corps", auth=("x", "s3cret"), timeout=10).json()["corps"][0][
        "apps"
    ]
    assert [a["agent_id"] for a in apps] == [1001, 2001]
    assert all("app_secret" not in a for a in apps)


def test_auth_leaves_dingtalk_surfaces_alone(start_server: StartServer) -> None:
    """--auth does not touch the DingTalk APIs: /gettoken and asyncsend_v2 work without the dingbox token."""
    client = Client(start_server("--auth", "s3cret").url)
    assert client.send(client.token(), userid_list="alice")["errcode"] == 0


def test_auth_variable_and_put_org(start_server: StartServer) -> None:
    """PUT /api/v1/org is behind --auth like the rest of /api/v1."""
    server = start_server("--auth", "s3cret")
    doc = {"corps": [{"corp_id": "acme", "name": "Acme"}]}
    assert requests.put(f"{server.url}/api/v1/org", json=doc, timeout=10).status_code == 401
    resp = requests.put(
        f"{server.url}/api/v1/org", json=doc, headers={"Authorization": "Bearer s3cret"}, timeout=10
    )
    assert resp.status_code == 200 and resp.json()["corps"] == 1


# -- test controls and loopback -----------------------------------------------------------------------


def non_loopback_ip() -> str | None:
    """This machine's address on its default route, if it has one that is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: connect only picks the source address
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def controls(base: str) -> dict[str, int]:
    """Status of each test control called from wherever `base` makes us appear."""
    http = requests.Session()
    return {
        "reset": http.post(f"{base}/api/v1/reset", timeout=10).status_code,
        "put_clock": http.put(
            f"{base}/api/v1/clock", json={"now": "2026-01-05T09:00:00+08:00", "frozen": True}, timeout=10
        ).status_code,
        "advance": http.post(f"{base}/api/v1/clock/advance", json={"seconds": 5}, timeout=10).status_code,
        "drain": http.post(f"{base}/api/v1/dispatch/drain", timeout=10).status_code,
    }


def test_test_controls_refuse_non_loopback_clients(start_server: StartServer) -> None:
    """Without --test-controls, reset, clock changes and drain are 403 to non-loopback clients only.

    On a machine with no non-loopback address only the loopback half can be shown.
    """
    server = start_server("--host", "0.0.0.0")
    address = non_loopback_ip()
    if address is None:
        assert controls(server.url) == {"reset": 204, "put_clock": 200, "advance": 200, "drain": 200}
        return
    remote = f"http://{address}:{server.port}"
    assert controls(remote) == {"reset": 403, "put_clock": 403, "advance": 403, "drain": 403}
    resp = requests.post(f"{remote}/api/v1/reset", timeout=10)
    assert resp.json() == FORBIDDEN
    assert requests.get(f"{remote}/api/v1/clock", timeout=10).json()["frozen"] is False  # nothing moved
    assert requests.get(f"{remote}/api/v1/corps", timeout=10).status_code == 200  # only controls are guarded
    assert controls(server.url) == {"reset": 204, "put_clock": 200, "advance": 200, "drain": 200}


def test_test_controls_flag_opens_them_to_everyone(start_server: StartServer) -> None:
    """With --test-controls, a non-loopback client may reset, move the clock and drain."""
    server = start_server("--host", "0.0.0.0", "--test-controls")
    address = non_loopback_ip() or "127.0.0.1"
    assert controls(f"http://{address}:{server.port}") == {
        "reset": 204,
        "put_clock": 200,
        "advance": 200,
        "drain": 200,
    }
