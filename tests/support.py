"""Test support: run the real `dingbox serve` process and talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

DEMO_AGENT = 1001
DEMO_ISV_AGENT = 2001
MESSAGES = "/topapi/message/corpconversation/"


def text(content: str) -> dict[str, Any]:
    """A text work notification."""
    return {"msgtype": "text", "text": {"content": content}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A `dingbox serve` subprocess on a free port; `info` holds the key=value lines it printed."""

    def __init__(
        self, db: Path | str, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        self.db_path = Path(db)
        self.db = f"sqlite:///{self.db_path}" if not str(db).startswith(("sqlite:", "postgres")) else str(db)
        self.args = list(args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, str] = {}
        self.output: list[str] = []
        self.port = 0

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.port = free_port()
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        cmd = [
            sys.executable,
            "-m",
            "dingbox",
            "serve",
            "--db",
            self.db,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(
            cmd + self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.info = {}
        self.output = []
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                key, sep, value = line.strip().partition("=")
                if sep and key.isidentifier():
                    self.info.setdefault(key, value)
                if key == "ui" or "template_id" in self.info:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dingbox serve exited:\n" + "".join(self.output))
            if "ui" in self.info:
                try:
                    requests.get(self.url + "/api/v1/health", timeout=1)
                    return self
                except requests.ConnectionError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("dingbox serve did not start:\n" + "".join(self.output))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Client:
    """A thin HTTP client for one server: tokens, oapi calls and the dingbox API."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def token(self, app_key: str = "demo-key", app_secret: str = "demo-secret") -> str:
        body = self.http.get(
            f"{self.base}/gettoken", params={"appkey": app_key, "appsecret": app_secret}
        ).json()
        assert body["errcode"] == 0, body
        return str(body["access_token"])

    def isv_token(
        self, corp_id: str = "dingdemo", suite_key: str = "suite-demo", secret: str = "suite-demo-secret"
    ) -> str:
        body = self.http.post(
            f"{self.base}/v1.0/oauth2/corpAccessToken",
            json={"suiteKey": suite_key, "suiteSecret": secret, "authCorpId": corp_id, "suiteTicket": "t"},
        ).json()
        return str(body["accessToken"])

    def oapi(self, path: str, body: Any = None, token: str | None = None, **kwargs: Any) -> dict[str, Any]:
        params = {"access_token": token} if token is not None else {}
        resp = self.http.post(f"{self.base}{path}", params=params, json=body, **kwargs)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def send(self, token: str, msg: Any = None, agent_id: int = DEMO_AGENT, **fields: Any) -> dict[str, Any]:
        body = {
            "agent_id": agent_id,
            "msg": msg or {"msgtype": "text", "text": {"content": "hello"}},
            **fields,
        }
        return self.oapi(MESSAGES + "asyncsend_v2", body, token)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.base}/api/v1{path}", **kwargs)

    def task(self, task_id: int, wait: float = 10.0, **params: Any) -> dict[str, Any]:
        resp = self.api("GET", f"/tasks/{task_id}", params={"wait": wait, **params})
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def freeze(self, now: str) -> None:
        """Stop the virtual clock at `now` (ISO-8601 with an offset)."""
        resp = self.api("PUT", "/clock", json={"now": now, "frozen": True})
        assert resp.status_code == 200, resp.text

    def advance(self, seconds: float) -> None:
        resp = self.api("POST", "/clock/advance", json={"seconds": seconds})
        assert resp.status_code == 200, resp.text

    def sent(self, token: str, **fields: Any) -> int:
        """Send (see `send`), wait until the task is finished, and give its task_id."""
        body = self.send(token, **fields)
        assert body["errcode"] == 0, body
        assert self.task(body["task_id"])["status"] == 2
        return int(body["task_id"])

    def drain(self, timeout: float = 30.0) -> None:
        resp = self.api("POST", "/dispatch/drain", params={"timeout": timeout})
        assert resp.status_code == 200, resp.text

    def reset(self) -> None:
        assert self.api("POST", "/reset").status_code == 204

    def load_org(self, doc: Any) -> requests.Response:
        return self.api("PUT", "/org", json=doc)

    def inbox(self, userid: str, corp_id: str = "dingdemo", **params: Any) -> list[dict[str, Any]]:
        resp = self.api("GET", f"/corps/{corp_id}/users/{userid}/messages", params=params)
        assert resp.status_code == 200, resp.text
        return list(resp.json()["messages"])

    def result(self, token: str, task_id: int, agent_id: int = DEMO_AGENT) -> dict[str, Any]:
        body = self.oapi(MESSAGES + "getsendresult", {"agent_id": agent_id, "task_id": task_id}, token)
        assert body["errcode"] == 0, body
        return dict(body["send_result"])


def in_parallel(base: str, jobs: Sequence[Callable[[Client], int]]) -> list[int]:
    """Run jobs on 4 threads, each with its own HTTP session (a Session is not safe to share)."""
    local = threading.local()

    def run(job: Callable[[Client], int]) -> int:
        if not hasattr(local, "client"):
            local.client = Client(base)
        return job(local.client)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(run, jobs))


def api_error(resp: requests.Response) -> tuple[int, str]:
    """(status, code) of a /api/v1 error, checking its envelope."""
    assert resp.headers["content-type"] == "application/json", resp.text
    body = resp.json()
    assert sorted(body) == ["error"] and sorted(body["error"]) == ["code", "message"], body
    return resp.status_code, body["error"]["code"]


def oapi_error(body: dict[str, Any]) -> tuple[int, str]:
    """(errcode, errmsg) of an oapi answer, checking it carries nothing else but its request_id."""
    assert set(body) == {"errcode", "errmsg", "request_id"}, body
    return body["errcode"], body["errmsg"]


def make_org(
    corp_id: str = "acme",
    *,
    users: int = 0,
    departments: Sequence[dict[str, Any]] = (),
    extra_users: Sequence[dict[str, Any]] = (),
    apps: Sequence[dict[str, Any]] | None = None,
    suites: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """An org document with `users` generated users (u00000…) in department 1, plus what is given."""
    generated = [{"userid": f"u{i:05d}", "name": f"User {i}", "dept_ids": [1]} for i in range(users)]
    return {
        "suites": list(suites),
        "corps": [
            {
                "corp_id": corp_id,
                "name": corp_id.title(),
                "departments": list(departments),
                "users": generated + list(extra_users),
                "apps": list(apps)
                if apps is not None
                else [
                    {
                        "agent_id": 5001,
                        "name": "Acme",
                        "type": "internal",
                        "app_key": "acme-key",
                        "app_secret": "acme-secret",
                    }
                ],
            }
        ],
    }


class DispatchProcess:
    """A `dingbox dispatch` subprocess (dispatcher loops, no server) on a shared PostgreSQL store."""

    def __init__(self, db: str, args: Sequence[str] = ()) -> None:
        self.db, self.args = db, list(args)
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 20.0) -> DispatchProcess:
        cmd = [sys.executable, "-m", "dingbox", "dispatch", "--db", self.db, "--log-level", "warning"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd + self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        started = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if line.startswith("dispatchers="):
                    started.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not started.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dingbox dispatch did not start:\n" + "".join(self.output))
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code, self.proc = self.proc.returncode, None
        return code
