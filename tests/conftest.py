"""Fixtures: a real `dingbox serve` per test module, reset before each test, and a client for it."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import POSTGRES_URL_VARIABLE, Client, PostgresDatabases, ServerProcess

# With DINGBOX_TEST_POSTGRES_URL set, every test that uses a server fixture runs once per store; test
# ids end in [sqlite] or [postgresql]. A test about SQLite itself (its file, lock, WAL, paths) is
# marked `sqlite_only`, and one about what no store takes part in (connection deadlines, how settings
# reach serve) `store_independent`: both run on SQLite alone.
POSTGRES_URL = os.environ.get(POSTGRES_URL_VARIABLE, "")
BACKENDS = ("sqlite", "postgresql") if POSTGRES_URL else ("sqlite",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if len(BACKENDS) > 1 and "store_backend" in metafunc.fixturenames:
        one = any(metafunc.definition.get_closest_marker(m) for m in ("sqlite_only", "store_independent"))
        backends = ["sqlite"] if one else list(BACKENDS)
        metafunc.parametrize("store_backend", backends, indirect=True, scope="module", ids=backends)


@pytest.fixture(scope="module")
def store_backend(request: pytest.FixtureRequest) -> str:
    """The store the module's servers run on: "sqlite", or "postgresql" (see BACKENDS)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases | None]:
    """This session's PostgreSQL databases (None without DINGBOX_TEST_POSTGRES_URL)."""
    if not POSTGRES_URL:
        yield None
        return
    databases = PostgresDatabases(POSTGRES_URL)
    yield databases
    databases.close()


@pytest.fixture(scope="module")
def pg_url(postgres: PostgresDatabases | None) -> Iterator[str]:
    """A fresh PostgreSQL database of the module's own (migrated), dropped at the end. Without
    DINGBOX_TEST_POSTGRES_URL the test skips, which fails a CI run (see the end of this file)."""
    if postgres is None:
        pytest.skip(f"{POSTGRES_URL_VARIABLE} is not set: the PostgreSQL-only tests need it")
    url = postgres.fresh()
    yield url
    postgres.drop(url)


@contextlib.contextmanager
def fresh_store(backend: str, folder: Path, databases: PostgresDatabases | None) -> Iterator[str]:
    """The URL of a new, empty store of `backend` (a file in `folder`, or a database dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'dingbox.db'}"
        return
    assert databases is not None
    url = databases.fresh()
    try:
        yield url
    finally:
        databases.drop(url)


@pytest.fixture(scope="module")
def module_store(
    store_backend: str, postgres: PostgresDatabases | None, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], contextlib.AbstractContextManager[str]]:
    """For a module's own server fixture: `with module_store() as db:` gives a fresh store of the
    module's backend."""
    return lambda: fresh_store(store_backend, tmp_path_factory.mktemp(store_backend), postgres)


@pytest.fixture(scope="module")
def server(module_store: Callable[[], contextlib.AbstractContextManager[str]]) -> Iterator[ServerProcess]:
    """One server per module, on a fresh store, with the demo org and test controls."""
    with module_store() as db:
        proc = ServerProcess(db, ["--test-controls"]).start()
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
def lenient(module_store: Callable[[], contextlib.AbstractContextManager[str]]) -> Iterator[ServerProcess]:
    """A lenient server (getsendresult for any size, lists of 5000 / 500); its writes of 777
    recipients straddle every cap."""
    with module_store() as db:
        proc = ServerProcess(db, ["--test-controls", "--limits", "lenient", "--batch-size", "777"]).start()
        yield proc
        proc.stop()


@pytest.fixture
def lc(lenient: ServerProcess) -> Client:
    """A client of the module's lenient server after a reset."""
    c = Client(lenient.url)
    c.reset()
    return c


@pytest.fixture
def new_store(
    store_backend: str, postgres: PostgresDatabases | None, tmp_path: Path
) -> Iterator[Callable[[], str]]:
    """`new_store()` gives the URL of another fresh store of the test's backend, for a test that
    restarts servers on one store; each is removed at the end of the test."""
    with contextlib.ExitStack() as stack:
        made = 0

        def new() -> str:
            nonlocal made
            made += 1
            folder = tmp_path / f"store{made}"
            folder.mkdir()
            return stack.enter_context(fresh_store(store_backend, folder, postgres))

        yield new


@pytest.fixture
def start_server(store_backend: str, new_store: Callable[[], str]) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with their own arguments, each on a fresh store of the test's backend unless `db`
    names one; each is stopped at the end of the test (before its store is removed)."""
    started: list[ServerProcess] = []

    def start(
        *args: str, db: Path | str | None = None, env: dict[str, str] | None = None, **kw: Any
    ) -> ServerProcess:
        if isinstance(db, Path) and store_backend != "sqlite":
            raise AssertionError("a test that serves a SQLite file is about SQLite: mark it sqlite_only")
        proc = ServerProcess(db or new_store(), args, env).start(**kw)
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
