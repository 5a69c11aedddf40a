"""Persistence: `open_store(url)` gives the backend for a store URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dingbox.store.base import Store, StoreError, StoreLocked

__all__ = ["Store", "StoreError", "StoreLocked", "open_store", "is_postgres"]


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str, *, lock: bool = True, writable: bool = True, synchronous: str = "normal") -> Store:
    """The store behind `url`, migrated; StoreError, naming the path and the reason, when it cannot be
    used. `writable` also proves a write goes through, so a read-only file fails here in one line
    rather than at the first request."""
    if url.startswith("sqlite:///"):
        return _open_sqlite(url, lock=lock, writable=writable, synchronous=synchronous)
    if is_postgres(url):
        from dingbox.store.postgres import PostgresStore

        return PostgresStore(url, writable=writable)
    raise StoreError(
        f"unsupported store URL {url!r}: use sqlite:///path.db or postgresql://user@host:port/db"
    )


def _open_sqlite(url: str, *, lock: bool, writable: bool, synchronous: str) -> Store:
    from dingbox.store.sqlite import SQLiteStore, sqlite_path

    path = sqlite_path(url)
    try:
        _check_path(path)
        return SQLiteStore(url, lock=lock, synchronous=synchronous, writable=writable)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open {path}: {_reason(exc)}") from None


def _check_path(path: Path) -> None:
    """Name the two path mistakes SQLite and mkdir report obscurely ("unable to open", "File exists")."""
    if path.is_dir():
        raise StoreError(f"cannot open {path}: it is a directory, not a SQLite file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StoreError(f"cannot open {path}: {parent} is a file, not a directory")
            return


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
