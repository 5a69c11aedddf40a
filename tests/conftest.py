"""Fixtures: a real `dingbox serve` per test module, reset before each test, and a client for it."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import Client, ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per module, on a fresh SQLite file, with the demo org and test controls."""
    proc = ServerProcess(tmp_path_factory.mktemp("dingbox") / "dingbox.db", ["--test-controls"]).start()
    yield proc
    proc.stop()


DEMO_ORG = yaml.safe_load(
    (Path(__file__).parent.parent / "src/dingbox/demo_org.yaml").read_text(encoding="utf-8")
)


@pytest.fixture
def client(server: ServerProcess) -> Client:
    """A client of the module's server after a reset: no traffic, the demo org as shipped, real time."""
    c = Client(server.url)
    c.reset()
    assert c.load_org(DEMO_ORG).status_code == 200
    return c


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A lenient server (getsendresult for any size, lists of 5000 / 500); its writes of 777
    recipients straddle every cap."""
    args = ["--test-controls", "--limits", "lenient", "--batch-size", "777"]
    proc = ServerProcess(tmp_path_factory.mktemp("lenient") / "d.db", args).start()
    yield proc
    proc.stop()


@pytest.fixture
def lc(lenient: ServerProcess) -> Client:
    """A client of the module's lenient server after a reset."""
    c = Client(lenient.url)
    c.reset()
    return c


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with their own arguments; each is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(
        *args: str, db: Path | str | None = None, env: dict[str, str] | None = None, **kw: Any
    ) -> ServerProcess:
        proc = ServerProcess(db or tmp_path / f"s{len(started)}.db", args, env).start(**kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The browser the UI tests drive: Debian's chromium, through the PyPI playwright package."""
    try:
        playwright = importlib.metadata.version("playwright")
    except importlib.metadata.PackageNotFoundError:
        playwright = "not installed"
    executable = shutil.which("chromium")
    chromium = "not installed"
    if executable:
        found = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
        chromium = f"{found.stdout.strip() or found.stderr.strip()} ({executable})"
    return [f"chromium: {chromium}", f"playwright: {playwright}"]


# In CI a skipped test counts as not run: the session fails instead of passing quietly.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a whole module skipped (importorskip, a module-level skip) counts too
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") == "true" and _skipped and not hasattr(session.config, "workerinput"):
        print(f"\nCI: {len(_skipped)} test(s) skipped; failing the run: {', '.join(_skipped[:10])}")
        session.exitstatus = 1
