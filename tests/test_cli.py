"""The `dingbox` command (DESIGN §5): what serve prints, the demo org, exit codes, Ctrl-C, org export.

Choices where DESIGN §5 is silent, checked below:
- a reason is printed on stderr as one line `dingbox: <reason>`, click's usage errors included;
- `org load` and `org export` take the store's lock like serve, so both exit 2 while a serve holds the file;
- `--dispatch-delay` counts from acceptance and is stored with the task, so a task pending at Ctrl-C still
  waits out its delay after the restart: the resume test uses a 3 s delay to stay fast;
- SIGTERM stops serve as cleanly as Ctrl-C (exit 0), which is what container runtimes send.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from support import MESSAGES, Client, ServerProcess, store_is_sound, store_sql

ROOT = Path(__file__).parent.parent
DEMO_YAML = ROOT / "src" / "dingbox" / "demo_org.yaml"
StartServer = Callable[..., ServerProcess]

# DESIGN.md §6's example, verbatim: the demo org must be exactly this text.
DESIGN_EXAMPLE = (
    """\
suites:
  - {suite_key: suite-demo, suite_secret: suite-demo-secret}
corps:
  - corp_id: dingdemo
    name: Demo Inc.
    departments:
      - {dept_id: 2, name: Engineering, parent_id: 1}
      - {dept_id: 3, name: Platform, parent_id: 2}
    users:
      - {userid: alice, name: Alice, dept_ids: [2]}
      - {userid: "0356123401", name: Bob, dept_ids: [3], mobile: "13800000001"}
      - {userid: carol, name: Carol, dept_ids: [3], active: false}
    apps:
      - {agent_id: 1001, name: Ops, type: internal, app_key: demo-key, app_secret: demo-secret}
      - {agent_id: 2001, name: Partner, type: isv, suite_key: suite-demo, visible_to: {dept_ids: [2]}}
    robots:
      - {robot_code: dingdemobot, agent_id: 1001, name: Ops Bot}
    templates:
      - template_id: tpl-welcome
        agent_id: 2001
        status: approved             # approved | pending | disabled
        msg: {msgtype: markdown, markdown: {title: "Welcome ${name}", text: "Hello ${name}, see ${url}"}}
    groups:
      - open_conversation_id: "cidDemoOps+Q=="
        name: Ops alerts
        members: [alice, "0356123401"]
        robots: [dingdemobot]        # enterprise robots installed in the group
        webhooks:                    # custom robots: /robot/send?access_token=<access_token>
"""
    + (  # the last line is longer than the code's line limit
        "          - {access_token: demo-hook, name: Alerts, keywords: [alert], secret: SECdemo,"
        ' ip_allowlist: ["127.0.0.1/32"]}\n'
    )
)

DEMO_LINES = [
    "corp_id=dingdemo",
    "agent_id=1001",
    "app_key=demo-key",
    "app_secret=demo-secret",
    "suite_key=suite-demo",
    "suite_secret=suite-demo-secret",
    "robot_code=dingdemobot",
    "template_id=tpl-welcome",
]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real `dingbox` command in a subprocess, with no DINGBOX_* variable but those given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DINGBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "dingbox", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
    )


def curl(*args: str) -> Any:
    """Run curl as a user would and give its JSON answer."""
    out = subprocess.run(
        ["curl", "-sS", *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return json.loads(out)


def announced(server: ServerProcess) -> list[str]:
    """The key=value lines serve printed on start, in order."""
    return [line.strip() for line in server.output if re.match(r"^[a-z_]+=", line)]


def corp_ids(server: ServerProcess) -> list[str]:
    resp = Client(server.url).api("GET", "/corps")
    assert resp.status_code == 200, resp.text
    return [c["corp_id"] for c in resp.json()["corps"]]


def small_org(corp_id: str, agent_id: int) -> dict[str, Any]:
    app = {
        "agent_id": agent_id,
        "name": "App",
        "type": "internal",
        "app_key": f"{corp_id}-key",
        "app_secret": "s",
    }
    return {"corps": [{"corp_id": corp_id, "name": corp_id.title(), "apps": [app]}]}


def write_json(path: Path, doc: Any) -> Path:
    path.write_bytes(orjson.dumps(doc))
    return path


# -- the demo org and what serve prints -------------------------------------------------------------


def test_demo_org_is_the_design_example_verbatim() -> None:
    """src/dingbox/demo_org.yaml is DESIGN §6's example byte for byte (and DESIGN.md's, where present)."""
    assert DEMO_YAML.read_text(encoding="utf-8") == DESIGN_EXAMPLE
    for design in (ROOT / "DESIGN.md", ROOT / "docs" / "DESIGN.md", ROOT.parent / "shared" / "DESIGN.md"):
        if design.exists():
            section = design.read_text(encoding="utf-8").split("## 6. Org file", 1)[1].split("\n## 7.", 1)[0]
            block = re.search(r"```yaml\n(.*?)```", section, re.S)
            assert block is not None and block.group(1) == DESIGN_EXAMPLE


def test_serve_on_empty_store_prints_demo_credentials(start_server: StartServer) -> None:
    """On an empty store serve loads the demo org and prints ui= then the demo's key=value lines."""
    server = start_server()
    url = f"http://127.0.0.1:{server.port}"
    assert announced(server) == [f"ui={url}/ui/", f"api={url}/", *DEMO_LINES]
    assert corp_ids(server) == ["dingdemo"]


def test_printed_credentials_work_with_curl(start_server: StartServer) -> None:
    """The printed app_key/app_secret get a token with curl; an asyncsend_v2 to alice lands in her inbox."""
    server = start_server()
    info = server.info
    token = curl(f"{server.url}/gettoken?appkey={info['app_key']}&appsecret={info['app_secret']}")
    assert (token["errcode"], token["errmsg"], token["expires_in"]) == (0, "ok", 7200)
    body = {
        "agent_id": int(info["agent_id"]),
        "userid_list": "alice",
        "msg": {"msgtype": "text", "text": {"content": "hi"}},
    }
    answer = curl(
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps(body),
        f"{server.url}{MESSAGES}asyncsend_v2?access_token={token['access_token']}",
    )
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok") and answer["task_id"] > 2**38
    client = Client(server.url)
    assert client.task(answer["task_id"])["status"] == 2
    inbox = client.inbox("alice", corp_id=info["corp_id"])
    assert [(m["task_id"], m["msgtype"], m["content"]) for m in inbox] == [
        (answer["task_id"], "text", {"content": "hi"})
    ]


def test_no_demo_loads_nothing(start_server: StartServer) -> None:
    """--no-demo on an empty store loads no org and prints no demo credentials."""
    server = start_server("--no-demo")
    assert [line.split("=")[0] for line in announced(server)] == ["ui", "api"]
    assert corp_ids(server) == []


def test_org_flag_loads_that_file_instead(start_server: StartServer, tmp_path: Path) -> None:
    """--org FILE on an empty store loads that file and not the demo org."""
    path = write_json(tmp_path / "acme.json", small_org("acme", 5001))
    server = start_server("--org", str(path))
    assert corp_ids(server) == ["acme"]
    assert "corp_id" not in server.info
    assert Client(server.url).token("acme-key", "s")


def test_dingbox_org_holds_several_files(start_server: StartServer, tmp_path: Path) -> None:
    """DINGBOX_ORG names several files separated by the OS path separator; all are loaded, no demo."""
    one = write_json(tmp_path / "one.json", small_org("acme", 5001))
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(small_org("beta", 6001)))
    server = start_server(env={"DINGBOX_ORG": f"{one}{os.pathsep}{two}"})
    assert corp_ids(server) == ["acme", "beta"]


def test_serve_with_a_bad_org_file_exits_2(tmp_path: Path) -> None:
    """serve --org with an invalid file exits 2 with the invalid_org reason in one line."""
    path = write_json(tmp_path / "bad.json", {"corps": [{"corp_id": "acme"}]})
    done = run_cli("serve", "--db", f"sqlite:///{tmp_path / 'b.db'}", "--port", "0", "--org", str(path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dingbox: invalid_org: {path}: corps[0].name: is required\n"


# -- exit codes ---------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_second_serve_on_the_same_file_exits_2(start_server: StartServer, tmp_path: Path) -> None:
    """A second serve on a SQLite file a running serve holds exits 2 in one line; the first runs on."""
    first = start_server(db=tmp_path / "one.db")
    done = run_cli("serve", "--db", first.db, "--port", "0")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dingbox: {tmp_path / 'one.db'} is in use by another dingbox process\n"
    assert Client(first.url).api("GET", "/health").status_code == 200


@pytest.mark.sqlite_only
def test_org_export_on_a_served_file_exits_2(start_server: StartServer, tmp_path: Path) -> None:
    """`org export` takes the store's lock too: on a file a serve holds it exits 2 in one line."""
    first = start_server(db=tmp_path / "held.db")
    done = run_cli("org", "export", "--db", first.db)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dingbox: {tmp_path / 'held.db'} is in use by another dingbox process\n"


@pytest.mark.parametrize(
    ("args", "env", "reason"),
    [
        (
            ["--limits", "bogus"],
            {},
            "Invalid value for '--limits': 'bogus' is not one of 'strict', 'lenient', 'unlimited'.",
        ),
        (
            [],
            {"DINGBOX_LIMITS": "bogus"},
            "limits has value 'bogus': choose one of strict, lenient, unlimited",
        ),
        (["--port", "abc"], {}, "Invalid value for '--port': 'abc' is not a valid integer."),
        ([], {"DINGBOX_PORT": "abc"}, "DINGBOX_PORT has value 'abc': not a valid port"),
        (["--port", "70000"], {}, "port has value 70000: must be between 0 and 65535"),
        (["--dispatchers", "-1"], {}, "dispatchers has value -1: must be 0 or more"),
        ([], {"DINGBOX_DISPATCHERS": "two"}, "DINGBOX_DISPATCHERS has value 'two': not a valid dispatchers"),
        (["--batch-size", "0"], {}, "batch_size has value 0: must be 1 or more"),
        (["--body-limit", "10"], {}, "body_limit has value 10: must be at least 1024"),
        (
            ["--dispatch-delay", "-1"],
            {},
            "dispatch_delay has value -1.0: must be a number of seconds, 0 or more",
        ),
        (["--batch-pause", "nan"], {}, "batch_pause has value nan: must be a number of seconds, 0 or more"),
        (
            [],
            {"DINGBOX_DISPATCH_DELAY": "inf"},
            "dispatch_delay has value inf: must be a number of seconds, 0 or more",
        ),
        (["--log-level", "loud"], {}, "log_level has value 'loud': choose debug, info, warning or error"),
        ([], {"DINGBOX_NO_DEMO": "maybe"}, "DINGBOX_NO_DEMO has value 'maybe': not a valid no_demo"),
        (
            [],
            {"DINGBOX_TEST_CONTROLS": "2"},
            "DINGBOX_TEST_CONTROLS has value '2': not a valid test_controls",
        ),
        ([], {"DINGBOX_HOST": ""}, "host is empty: give an address such as 127.0.0.1 or 0.0.0.0"),
        (["--header-timeout", "0"], {}, "header_timeout has value 0.0: must be a number of seconds above 0"),
        (
            [],
            {"DINGBOX_BODY_TIMEOUT": "inf"},
            "body_timeout has value inf: must be a number of seconds above 0",
        ),
        (["--keep-alive-timeout", "0"], {}, "keep_alive_timeout has value 0: must be 1 or more"),
        (["--max-connections", "0"], {}, "max_connections has value 0: must be 1 or more"),
        (
            [],
            {"DINGBOX_MAX_CONNECTIONS": "many"},
            "DINGBOX_MAX_CONNECTIONS has value 'many': not a valid max_connections",
        ),
        (
            ["--allowed-host", "evil example"],
            {},
            "allowed_host has value 'evil example': give a host name such as dingbox.test",
        ),
    ],
)
def test_bad_setting_exits_2(tmp_path: Path, args: list[str], env: dict[str, str], reason: str) -> None:
    """A bad flag or DINGBOX_* value exits 2 before serving, with one line naming the setting."""
    done = run_cli("serve", "--db", f"sqlite:///{tmp_path / 's.db'}", *args, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"dingbox: {reason}\n")
    assert not (tmp_path / "s.db").exists()


def test_port_in_use_exits_2(tmp_path: Path) -> None:
    """serve on a port another socket holds exits 2 naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--port", str(port))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dingbox: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("db", [None, "sqlite:///x.db"])
def test_dispatch_on_sqlite_exits_2(tmp_path: Path, db: str | None) -> None:
    """`dingbox dispatch` is for a shared PostgreSQL store: on SQLite (the default too) it exits 2."""
    args = ["dispatch"] + (["--db", db] if db else [])
    done = run_cli(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "dingbox: dispatch runs beside serve on a shared PostgreSQL store;"
        " a SQLite store is dispatched by serve\n"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "mysql://root@localhost/db",
            "unsupported store URL 'mysql://root@localhost/db': use sqlite:///path.db or postgresql://user@host:port/db",
        ),
        (
            "sqlite://relative.db",
            "unsupported store URL 'sqlite://relative.db': use sqlite:///path.db or postgresql://user@host:port/db",
        ),
        ("sqlite:///", "SQLite URL names no file: 'sqlite:///'"),
    ],
)
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["org", "export"]])
def test_unsupported_db_url_exits_2(command: list[str], url: str, reason: str) -> None:
    """A --db URL dingbox cannot use exits 2 with one line naming it."""
    done = run_cli(*command, "--db", url)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dingbox: {reason}\n"


# -- stopping and restarting --------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_cleanly_and_keeps_data(
    start_server: StartServer, new_store: Callable[[], str], sig: int
) -> None:
    """Ctrl-C (SIGINT; SIGTERM alike) stops serve with exit 0, no traceback; a restart keeps the data."""
    db = new_store()
    server = start_server(db=db)
    client = Client(server.url)
    task_id = client.send(client.token(), userid_list="alice")["task_id"]
    assert client.task(task_id)["status"] == 2
    assert server.stop(sig) == 0
    assert "Traceback" not in "".join(server.output) and "Aborted" not in "".join(server.output)
    assert store_is_sound(db)
    again = start_server(db=db)
    client = Client(again.url)
    assert [m["task_id"] for m in client.inbox("alice")] == [task_id]
    assert announced(again)[2:] == DEMO_LINES  # the demo corp is still there, and was not loaded twice
    assert corp_ids(again) == ["dingdemo"]


def test_task_pending_at_ctrl_c_is_dispatched_after_restart(
    start_server: StartServer, new_store: Callable[[], str]
) -> None:
    """A task still waiting at Ctrl-C is dispatched by the next serve on the same store."""
    db = new_store()
    server = start_server("--dispatch-delay", "3", db=db)
    client = Client(server.url)
    task_id = client.send(client.token(), userid_list="alice")["task_id"]
    assert client.task(task_id, wait=0)["status"] == 0
    assert server.stop() == 0
    assert store_sql(db, "SELECT status FROM tasks WHERE task_id = ?", (task_id,)) == [(0,)]
    again = start_server(db=db)
    client = Client(again.url)
    done = client.task(task_id, wait=15)
    assert (done["status"], [(r["userid"], r["outcome"]) for r in done["recipients"]]) == (
        2,
        [("alice", "delivered")],
    )
    assert [m["task_id"] for m in client.inbox("alice")] == [task_id]


# -- org export -------------------------------------------------------------------------------------


def test_org_export_round_trips(tmp_path: Path, new_store: Callable[[], str]) -> None:
    """`org export` prints YAML that loads into a fresh store and exports again identically."""
    first, second = new_store(), new_store()
    extra = small_org("acme", 5001)
    extra["corps"][0]["name"] = "演示公司 «Acme»"
    extra["corps"][0]["users"] = [
        {"userid": "0356123402", "name": "零", "mobile": "13800000009", "active": False}
    ]
    extra_path = write_json(tmp_path / "acme.json", extra)
    assert run_cli("org", "load", str(DEMO_YAML), str(extra_path), "--db", first).returncode == 0
    exported = run_cli("org", "export", "--db", first)
    assert (exported.returncode, exported.stderr) == (0, "")
    parsed = yaml.safe_load(exported.stdout)
    assert parsed["suites"] == yaml.safe_load(DESIGN_EXAMPLE)["suites"]
    assert parsed["corps"] == [extra["corps"][0], yaml.safe_load(DESIGN_EXAMPLE)["corps"][0]]
    again_path = tmp_path / "exported.yaml"
    again_path.write_text(exported.stdout, encoding="utf-8")
    assert run_cli("org", "load", str(again_path), "--db", second).returncode == 0
    assert run_cli("org", "export", "--db", second).stdout == exported.stdout


def test_org_export_of_an_empty_store(new_store: Callable[[], str]) -> None:
    """`org export` of a store without an org prints empty lists and exits 0."""
    done = run_cli("org", "export", "--db", new_store())
    assert (done.returncode, done.stdout, done.stderr) == (0, "suites: []\ncorps: []\n", "")


def test_bare_dingbox_shows_help() -> None:
    """`dingbox` without a command lists the commands of DESIGN §5 and exits 2 (a usage error)."""
    done = run_cli()
    assert done.returncode == 2
    assert all(name in done.stderr for name in ("serve", "dispatch", "org"))


def test_help_and_version_exit_0() -> None:
    """`dingbox --help` and `--version` answer on stdout with exit 0."""
    help_out = run_cli("--help")
    assert (help_out.returncode, help_out.stderr) == (0, "") and "serve" in help_out.stdout
    version = run_cli("--version")
    assert (version.returncode, version.stderr) == (0, "") and re.search(r"version \d+\.\d+", version.stdout)


# -- unusable store paths -----------------------------------------------------------------------------
# Root ignores file modes, so when the suite runs as root (as CI does) these commands run as `nobody`:
# the permission cases are never skipped.


def unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """`dingbox ARGS` as an unprivileged user (this one when it is not root)."""
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []
    base = {k: v for k, v in os.environ.items() if not k.startswith("DINGBOX_")}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "dingbox", *args],
        capture_output=True,
        text=True,
        env={**base, "HOME": "/"},
        timeout=60,
        cwd="/",
    )


@pytest.fixture
def open_dir() -> Any:
    """A directory every user may enter (pytest's own tmp_path is private to its owner)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dingbox-paths-") as name:
        path = Path(name)
        path.chmod(0o777)
        yield path
        for entry in [path, *path.rglob("*")]:  # so the cleanup can enter what a case closed
            entry.chmod(0o777)


def folder(path: Path, mode: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)  # mkdir's own mode is cut by the umask
    return path


def made_store(path: Path) -> Path:
    """A real store in folder `path` (created by this user), its lock file writable by anyone."""
    folder(path, 0o777)
    db = path / "d.db"
    assert run_cli("org", "export", "--db", f"sqlite:///{db}").returncode == 0
    (path / "d.db.lock").chmod(0o666)
    return db


def test_the_unprivileged_user_can_run_dingbox(open_dir: Path) -> None:
    """The cases below mean something only if the unprivileged user can serve a usable path."""
    done = unprivileged("org", "export", "--db", f"sqlite:///{open_dir / 'ok.db'}")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def test_read_only_store_file_exits_2(open_dir: Path) -> None:
    """A store file the user may not write: serve and org load exit 2 in one line; org export reads it."""
    db = made_store(open_dir / "ro")
    db.chmod(0o444)
    expected = f"dingbox: cannot write {db}: attempt to write a readonly database\n"
    served = unprivileged("serve", "--port", "0", "--db", f"sqlite:///{db}")
    assert (served.returncode, served.stdout, served.stderr) == (2, "", expected)
    org = write_json(open_dir / "org.json", {"corps": [{"corp_id": "acme", "name": "Acme"}]})
    org.chmod(0o644)
    loaded = unprivileged("org", "load", str(org), "--db", f"sqlite:///{db}")
    assert (loaded.returncode, loaded.stdout, loaded.stderr) == (2, "", expected)
    exported = unprivileged("org", "export", "--db", f"sqlite:///{db}")
    assert (exported.returncode, exported.stdout) == (0, "suites: []\ncorps: []\n")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("read-only directory, new store", "cannot open {db}.lock: Permission denied"),
        ("read-only directory holding a store", "cannot open {db}: attempt to write a readonly database"),
        ("unwritable lock file", "cannot open {db}.lock: Permission denied"),
        ("path is a directory", "cannot open {db}: it is a directory, not a SQLite file"),
        ("path under a regular file", "cannot open {db}: {root}/plain is a file, not a directory"),
        ("random bytes", "cannot open {db}: file is not a database"),
        ("text file", "cannot open {db}: file is not a database"),
        ("SQLite header, garbage pages", "cannot open {db}: database disk image is malformed"),
    ],
)
def test_unusable_store_path_exits_2(open_dir: Path, case: str, reason: str) -> None:
    """Each unusable --db path makes serve exit 2 with one `dingbox: …` line, no traceback."""
    db = open_dir / "case" / "d.db"
    if case == "read-only directory, new store":
        folder(open_dir / "case", 0o555)
    elif case == "read-only directory holding a store":
        made_store(open_dir / "case").chmod(0o666)
        (open_dir / "case").chmod(0o555)
    elif case == "unwritable lock file":
        folder(open_dir / "case", 0o777)
        Path(f"{db}.lock").touch()
        Path(f"{db}.lock").chmod(0o444)
    elif case == "path is a directory":
        folder(db, 0o777)
    elif case == "path under a regular file":
        (open_dir / "plain").write_text("not a folder")
        db = open_dir / "plain" / "d.db"
    else:
        folder(open_dir / "case", 0o777)
        if case == "random bytes":
            db.write_bytes(bytes((i * 151 + 7) % 256 for i in range(8192)))
        elif case == "text file":
            db.write_text("id,name\n1,alice\n")
        else:
            made_store(open_dir / "case")
            data = bytearray(db.read_bytes())
            data[4096:] = bytes(i % 251 for i in range(len(data) - 4096))
            db.write_bytes(bytes(data))
        db.chmod(0o666)
    done = unprivileged("serve", "--port", "0", "--db", f"sqlite:///{db}")
    expected = "dingbox: " + reason.format(db=db, root=open_dir) + "\n"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", expected)
