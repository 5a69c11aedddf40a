"""Persistence: `open_store(url)` gives the backend for a store URL."""

from __future__ import annotations

from dingbox.store.base import Store, StoreError, StoreLocked

__all__ = ["Store", "StoreError", "StoreLocked", "open_store", "is_postgres"]


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str, *, lock: bool = True, synchronous: str = "normal") -> Store:
    if url.startswith("sqlite:///"):
        from dingbox.store.sqlite import SQLiteStore

        return SQLiteStore(url, lock=lock, synchronous=synchronous)
    if is_postgres(url):
        raise StoreError("PostgreSQL support is not built yet; use a sqlite:/// URL")
    raise StoreError(
        f"unsupported store URL {url!r}: use sqlite:///path.db or postgresql://user@host:port/db"
    )
