"""The shared store: PostgreSQL, for several dingbox processes on one database."""

from dingbox.store.postgres.backend import PostgresStore

__all__ = ["PostgresStore"]
