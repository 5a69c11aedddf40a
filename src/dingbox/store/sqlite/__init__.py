"""The embedded default store: one SQLite file, one writer thread, readers on their own connections."""

from dingbox.store.sqlite.backend import SQLiteStore, sqlite_path

__all__ = ["SQLiteStore", "sqlite_path"]
