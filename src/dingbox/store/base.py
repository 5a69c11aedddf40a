"""The Store interface: units of work run on a transaction, and the dialect-neutral `Tx` they see.

Operations are plain functions `op(tx, ...)` kept in the `*_sql` modules beside this one, written
with `?` placeholders in SQL both SQLite and PostgreSQL accept. A backend supplies the connection
handling: `write` runs a unit of work in a durable transaction (SQLite groups concurrent ones into
one commit), `read` runs one on a read-only snapshot off the event loop.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar

from dingbox.errors import Unavailable

T = TypeVar("T")
P = ParamSpec("P")
Row = tuple[Any, ...]


class StoreError(Unavailable, RuntimeError):
    """The store cannot be opened or used (bad URL, locked file, unreachable server, failing disk)."""


class StoreLocked(StoreError):
    """Another `dingbox serve` owns this SQLite file."""


class Tx(Protocol):
    dialect: str
    lastrowid: int  # the rowid the last execute inserted, where the dialect has rowids

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def insert_id(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT … RETURNING <id> and give the id."""

    def others_waiting(self) -> bool:
        """Whether other units of work wait for this transaction to end: a long unit of work checks it
        between steps and commits what it has, so that a short one is not held up behind it."""


class Store(abc.ABC):
    url: str
    failure: str | None = None  # why writes fail right now (disk full, I/O error), until one succeeds

    @abc.abstractmethod
    async def write(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `op(tx, *args, **kwargs)` in a write transaction; its effects are durable when this returns."""

    @abc.abstractmethod
    async def write_batched(self, op: Callable[[Any, list[Any]], list[T]], item: Any) -> T:
        """Like `write`, but concurrent calls of the same `op` may be handed over together:
        `op(tx, items)` returns one result per item, in order (one multi-row statement for many)."""

    @abc.abstractmethod
    async def read(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `op(tx, *args, **kwargs)` on a consistent read snapshot."""

    @abc.abstractmethod
    def write_sync(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`write` for callers outside the event loop (the CLI)."""

    @abc.abstractmethod
    def read_sync(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def describe(self) -> dict[str, str]:
        """The backend and its settings, for /metrics (no secrets)."""


def placeholders(n: int) -> str:
    return ",".join("?" * n)
