"""Upgrades: a store an earlier dingbox wrote opens under this one, with every task, message and
result as that release left them; the task it left pending is dispatched, and new sends are decided
against its deliveries (same content, same day: 143106).

The stores are fixtures in tests/fixtures/upgrade/ (README.md there says how they were made): on
SQLite a file the release before the PostgreSQL store wrote (commit bc9fbc8); on PostgreSQL a plain
dump of a database of the first PostgreSQL schema (version 1). Each test serves a copy.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from support import Client, PostgresDatabases, ServerProcess, inbox_facts, task_facts, text

FIXTURES = Path(__file__).parent / "fixtures" / "upgrade"


@pytest.fixture
def old_store(
    store_backend: str, postgres: PostgresDatabases | None, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(URL of a copy of the backend's fixture store, the manifest of what its release answered)."""
    if store_backend == "sqlite":
        db = tmp_path / "old.db"
        db.write_bytes(gzip.decompress((FIXTURES / "sqlite-bc9fbc8.db.gz").read_bytes()))
        yield f"sqlite:///{db}", json.loads((FIXTURES / "sqlite-bc9fbc8.json").read_text(encoding="utf-8"))
        return
    assert postgres is not None
    url = postgres.empty()
    try:
        restored = subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-f",
                str(FIXTURES / "postgresql-v1.sql"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restored.returncode == 0, restored.stderr
        yield url, json.loads((FIXTURES / "postgresql-v1.json").read_text(encoding="utf-8"))
    finally:
        postgres.drop(url)


def test_a_store_of_an_earlier_release_serves_on(
    start_server: Callable[..., ServerProcess], old_store: tuple[str, dict[str, Any]]
) -> None:
    db, old = old_store
    c = Client(start_server("--test-controls", db=db).url)
    internal, isv = c.token(), c.isv_token()

    clock = c.api("GET", "/clock").json()  # the virtual clock is stored: still frozen on that day
    assert clock["frozen"] and datetime.fromisoformat(clock["now"]) == datetime.fromisoformat(old["now"])
    pending = c.task(old["pending"]["task_id"], wait=30)
    assert (pending["status"], [(r["userid"], r["outcome"]) for r in pending["recipients"]]) == (
        2,
        [(old["pending"]["userid"], "delivered")],
    )
    for name, task in old["tasks"].items():
        assert task_facts(c, task["task_id"]) == task["facts"], name
        if "result" in task:
            token = internal if task["agent_id"] == 1001 else isv
            assert c.result(token, task["task_id"], task["agent_id"]) == task["result"], name
    for userid, messages in old["inboxes"].items():
        kept = [m for m in inbox_facts(c, userid) if m["task_id"] != old["pending"]["task_id"]]
        assert kept == messages, userid

    same = old["same_content"]
    again = c.sent(internal, msg=same["msg"], agent_id=same["agent_id"], userid_list=same["userid"])
    new = c.sent(internal, msg=text("after the upgrade"), userid_list="alice,0356123401")
    assert c.result(internal, again)["forbidden_list"] == [
        {"code": "143106", "count": 1, "userid": same["userid"]}
    ]
    assert c.result(internal, new)["unread_user_id_list"] == ["alice", "0356123401"]
    newest = c.inbox("alice")[0]
    older = [m["id"] for messages in old["inboxes"].values() for m in messages]
    assert newest["task_id"] == new and newest["id"] > max(older)
