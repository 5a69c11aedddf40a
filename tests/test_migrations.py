"""The store's migrations: they build exactly the schema in store/schema/sqlite.sql, once each.

The migrations are applied the way `dingbox` applies them: by the real CLI (`org export` opens and
migrates the store) on a fresh SQLite file; the result is compared with a file built from the schema.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "dingbox" / "store"
SCHEMA = SRC / "schema" / "sqlite.sql"
MIGRATIONS = SRC / "migrations" / "sqlite"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DINGBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "dingbox", *args], capture_output=True, text=True, env=env, timeout=60
    )


def normalized_sql(sql: str | None) -> str | None:
    """The statement without comments and with whitespace only where a word needs it."""
    if sql is None:
        return None
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = " ".join(sql.split())
    return re.sub(r"\s*([(),])\s*", r"\1", sql)


def schema_rows(path: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    return [(t, n, tbl, normalized_sql(sql)) for t, n, tbl, sql in rows]


def migrated(tmp_path: Path, name: str = "m.db") -> Path:
    path = tmp_path / name
    done = run_cli("org", "export", "--db", f"sqlite:///{path}")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return path


def test_migrations_build_the_schema_file(tmp_path: Path) -> None:
    """Every migration applied to an empty file gives exactly the schema of store/schema/sqlite.sql."""
    from_migrations = schema_rows(migrated(tmp_path))
    reference = tmp_path / "schema.db"
    with sqlite3.connect(reference) as conn:
        conn.executescript(SCHEMA.read_text(encoding="utf-8"))
    assert from_migrations == schema_rows(reference)
    assert len([r for r in from_migrations if r[0] == "table"]) >= 15


def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    """Each migration is recorded in schema_migrations; opening the store again applies nothing."""
    path = migrated(tmp_path)
    files = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    with sqlite3.connect(path) as conn:
        first = conn.execute(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
    assert [f"{v:04d}_{n}.sql" for v, n, _ in first] == files
    schema_before = schema_rows(path)
    assert run_cli("org", "export", "--db", f"sqlite:///{path}").returncode == 0
    with sqlite3.connect(path) as conn:
        again = conn.execute(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
    assert again == first  # same rows, same applied_at: nothing ran twice
    assert schema_rows(path) == schema_before


def test_store_from_a_newer_dingbox_is_refused(tmp_path: Path) -> None:
    """A store recording a migration this dingbox does not have exits 2 instead of running on it."""
    path = migrated(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)")
    done = run_cli("org", "export", "--db", f"sqlite:///{path}")
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr
        == "dingbox: the store was migrated by a newer dingbox (schema version 9999); upgrade dingbox\n"
    )


def test_not_a_database_exits_2(tmp_path: Path) -> None:
    """A --db file that is not SQLite exits 2 with one line rather than a traceback."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    done = run_cli("org", "export", "--db", f"sqlite:///{path}")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dingbox: cannot open {path}: file is not a database\n"
