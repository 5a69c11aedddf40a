"""Test support: run the real `dingbox serve` process and talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import requests

DEMO_AGENT = 1001
DEMO_ISV_AGENT = 2001
MESSAGES = "/topapi/message/corpconversation/"


def text(content: str) -> dict[str, Any]:
    """A text work notification."""
    return {"msgtype": "text", "text": {"content": content}}


# The PostgreSQL server the store-touching tests also run against, when set (CI sets it): an admin
# URL such as postgresql://postgres@127.0.0.1:5432/test; each server gets a database of its own there.
POSTGRES_URL_VARIABLE = "DINGBOX_TEST_POSTGRES_URL"
DATABASE_PREFIX = "dbxt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[str] | None, sig: int, timeout: float) -> int | None:
    """Signal a process and wait for it, killing it after `timeout`; its exit code (None: never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


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

    def start(self, timeout: float = 60.0) -> ServerProcess:
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
        code, self.proc = stop_process(self.proc, sig, timeout), None
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


class PostgresDatabases:
    """Fresh, migrated PostgreSQL databases, one per test server, dropped when the test is done with it.

    The migrations run once per session into a template database; every fresh database is a copy of it
    (`CREATE DATABASE ... TEMPLATE`, a tenth of a second). Names carry the xdist worker and the process
    id, so parallel workers and concurrent sessions on one PostgreSQL server never meet.
    """

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.stem = f"{DATABASE_PREFIX}_{worker}_{os.getpid()}"
        self.template = f"{self.stem}_template"
        self.made = 0
        self.has_template = False

    def url(self, name: str) -> str:
        """The admin URL naming database `name` instead."""
        base, _, _ = self.admin_url.partition("?")
        scheme, sep, rest = base.partition("://")
        server = rest.split("/", 1)[0]
        query = self.admin_url[len(base) :]
        return f"{scheme}{sep}{server}/{name}{query}"

    def admin(self, statement: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def empty(self) -> str:
        """A new database with nothing in it (not even dingbox's tables)."""
        self.made += 1
        name = f"{self.stem}_{self.made}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def create_template(self) -> None:
        """The template, in a collation that sorts as people do (ICU's en-US: "alice" before "Bob") where
        the server has ICU: dingbox must give the byte order SQLite gives on any server, not only on
        one whose default happens to be C."""
        try:
            self.admin(
                f"CREATE DATABASE {self.template} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            )
        except psycopg.Error:  # no ICU in this server (or before PostgreSQL 15): its default collation
            self.admin(f"CREATE DATABASE {self.template}")

    def fresh(self) -> str:
        """A new database holding the current schema and nothing else, as a first serve would leave it."""
        if not self.has_template:
            self.admin(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
            self.create_template()
            migrated = subprocess.run(  # the real command migrates, and leaves no connection behind
                [sys.executable, "-m", "dingbox", "org", "export", "--db", self.url(self.template)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert migrated.returncode == 0, migrated.stderr
            self.has_template = True
        self.made += 1
        name = f"{self.stem}_{self.made}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.partition("?")[0].rsplit("/", 1)[1]
        assert name.startswith(self.stem), url
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        if self.has_template:
            self.admin(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
            self.has_template = False


def store_sql(db: str, sql: str, params: Sequence[Any] = (), *, write: bool = False) -> list[tuple[Any, ...]]:
    """Run one statement on a store from outside the server and give its rows; `?` marks parameters,
    as in the store's own SQL. An observer reads (SQLite: a read-only connection, which leaves a
    killed server's WAL for the next start to recover, as a read-write one closing last would not);
    `write` plays an older release that left odd rows."""
    if db.startswith("sqlite:///"):
        path = db.removeprefix("sqlite:///")
        target, uri = (path, False) if write else (f"file:{path}?mode=ro", True)
        with sqlite3.connect(target, uri=uri, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()
    with psycopg.connect(db, autocommit=True, connect_timeout=10) as pg:
        cursor = pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def store_is_sound(db: str) -> bool:
    """Whether the store's own check finds it intact: SQLite's integrity check of the file. A PostgreSQL
    database has no such check to run from outside: that it answers a query is what there is to see."""
    if db.startswith("sqlite:///"):
        return store_sql(db, "PRAGMA integrity_check") == [("ok",)]
    return store_sql(db, "SELECT 1") == [(1,)]


def in_parallel(base: str, jobs: Sequence[Callable[[Client], int]]) -> list[int]:
    """Run jobs on 4 threads, each with its own HTTP session (a Session is not safe to share)."""
    local = threading.local()

    def run(job: Callable[[Client], int]) -> int:
        if not hasattr(local, "client"):
            local.client = Client(base)
        return job(local.client)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(run, jobs))


# The parts of a Task and a Message that are contracts (DESIGN §7): what an upgrade must keep as it was.
TASK_FACTS = ("task_id", "corp_id", "agent_id", "source", "status", "counts", "invalid_dept_ids")
RECIPIENT_FACTS = ("userid", "outcome", "reason", "code", "message_id")
MESSAGE_FACTS = ("id", "task_id", "source", "agent_id", "robot_code", "msgtype", "content", "template_id")
MESSAGE_FACTS += ("status_bar", "read", "recalled", "created_at")


def task_facts(c: Client, task_id: int) -> dict[str, Any]:
    """The task's contract fields and its recipients', once it is finished."""
    task = c.task(task_id)
    facts = {key: task[key] for key in TASK_FACTS}
    facts["recipients"] = [{key: r[key] for key in RECIPIENT_FACTS} for r in task["recipients"]]
    return facts


def inbox_facts(c: Client, userid: str) -> list[dict[str, Any]]:
    """The contract fields of a demo-corp user's messages, newest first."""
    return [{key: m[key] for key in MESSAGE_FACTS} for m in c.inbox(userid, limit=200)]


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
    """A `dingbox dispatch` subprocess (dispatcher loops, no server) on a shared PostgreSQL store; its
    output lines are kept in `output`. `start` launches and waits; `launch` then `started` lets several
    be launched first and waited for together, so they start at once."""

    def __init__(self, db: str, args: Sequence[str] = (), log_level: str = "warning") -> None:
        self.db, self.args, self.log_level = db, list(args), log_level
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._started = threading.Event()

    def launch(self) -> DispatchProcess:
        cmd = [sys.executable, "-m", "dingbox", "dispatch", "--db", self.db, "--log-level", self.log_level]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = self.proc = subprocess.Popen(
            cmd + self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line)
                if line.startswith("dispatchers="):
                    self._started.set()
            self._started.set()

        threading.Thread(target=pump, daemon=True).start()
        return self

    def started(self, timeout: float = 30.0) -> DispatchProcess:
        if not self._started.wait(timeout) or self.proc is None or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("dingbox dispatch did not start:\n" + "".join(self.output))
        return self

    def start(self, timeout: float = 30.0) -> DispatchProcess:
        return self.launch().started(timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def lines(self, words: str) -> list[str]:
        return [line for line in self.output if words in line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        code, self.proc = stop_process(self.proc, sig, timeout), None
        return code
