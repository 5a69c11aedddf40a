"""Numbered migrations: `migrations/<dialect>/NNNN_name.sql`, applied in order on start, recorded once.

`schema/sqlite.sql` is the schema SQLite's migrations together produce, kept beside them so a reader
sees the current tables in one place; a test checks that the two agree. PostgreSQL's one migration,
0001, is still its whole schema; `schema/postgresql.sql` comes with its second.
"""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from typing import Any

from dingbox.store.base import StoreError


def migration_files(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration of a dialect, in order."""
    folder = resources.files("dingbox.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations, each in its own transaction; return the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at REAL NOT NULL)"
    )
    migrations = migration_files("sqlite")
    _refuse_newer(
        {row[0] for row in conn.execute("SELECT version FROM schema_migrations")},
        {version for version, _, _ in migrations},
    )
    applied = []
    for version, name, sql in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # checked inside the write transaction, so two processes starting together apply it once
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                conn.execute("COMMIT")
                continue
            for statement in statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(version)
    return applied


_MIGRATION_LOCK = 0x64696E67626F78  # "dingbox": the advisory lock that serializes migrating processes


def migrate_postgres(conn: Any) -> list[int]:
    """Apply pending PostgreSQL migrations on an autocommit connection, each in its own transaction.

    Processes starting together take turns under an advisory lock, so each migration runs once.
    """
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        migrations = migration_files("postgresql")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        _refuse_newer(done, {version for version, _, _ in migrations})
        applied = []
        for version, name, sql in migrations:
            if version in done:
                continue
            with conn.transaction():
                conn.execute(sql)  # a script without parameters: PostgreSQL runs every statement
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (version, name, time.time()),
                )
            applied.append(version)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


def _refuse_newer(recorded: set[int], known: set[int]) -> None:
    """A store that records a version this dingbox does not know was migrated by a newer release:
    running on it could corrupt it."""
    newer = sorted(recorded - known)
    if newer:
        raise StoreError(
            f"the store was migrated by a newer dingbox (schema version {newer[-1]}); upgrade dingbox"
        )


def statements(sql: str) -> list[str]:
    """Split a script at the semicolons SQLite itself sees as statement ends.

    `sqlite3.complete_statement` knows string literals, comments and trigger bodies, so a `;` inside
    any of them does not cut a statement in two. Parts holding only comments are dropped.
    """
    parts: list[str] = []
    start = 0
    for end, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : end + 1]):
            parts.append(sql[start : end + 1])
            start = end + 1
    parts.append(sql[start:])
    return [part.strip() for part in parts if _has_code(part)]


def _has_code(part: str) -> bool:
    lines = (line.split("--", 1)[0] for line in part.splitlines())
    return any(line.strip() and line.strip() != ";" for line in lines)
