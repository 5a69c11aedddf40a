"""The Store interface: units of work run on a transaction, and the `Tx` they see.

Operations are plain functions `op(tx, ...)` kept in the `*_sql` modules beside this one. Their SQL is
written once where SQLite and PostgreSQL agree (nearly everywhere: `?` marks a parameter, and each
backend compiles a statement to its own driver's form once); where the dialects differ the statement
is named and each backend's `statements` module holds its own text (`Tx.sql(name)`). A backend
supplies the connections and transactions: `write` runs a unit of work in a durable transaction,
`read` runs one on a read-only snapshot, both off the event loop.
"""

from __future__ import annotations

import abc
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from dingbox.errors import Unavailable

T = TypeVar("T")
P = ParamSpec("P")
Row = tuple[Any, ...]


class StoreError(Unavailable, RuntimeError):
    """The store cannot be opened or used (bad URL, locked file, unreachable server, failing disk)."""


class StoreLocked(StoreError):
    """Another `dingbox serve` owns this SQLite file."""


class Tx(Protocol):
    dialect: str  # "sqlite" or "postgresql": which backend's named statements `sql` gives

    def sql(self, name: str) -> str:
        """The backend's own text of a statement whose form differs between dialects."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def records(self, cls: Callable[..., T], sql: str, params: Sequence[Any] = ()) -> list[T]:
        """Rows as `cls(**columns)`: mapped by column name, so a SELECT's column order is free."""

    def record(self, cls: Callable[..., T], sql: str, params: Sequence[Any] = ()) -> T | None: ...

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows at the backend's bulk speed (PostgreSQL: COPY); a conflict fails the unit."""

    def aborts(self, exc: BaseException) -> bool:
        """Whether a failure inside the unit of work ends all of it (the store itself fails, or the
        backend must run the unit again) rather than only the part a savepoint undoes. Ends what is
        in flight either way (PostgreSQL: an open COPY is abandoned, not finished)."""

    def others_waiting(self) -> bool:
        """Whether other units of work wait for this transaction to end (a backend with one writer): a
        long unit of work checks it between steps and commits what it has, so that a short one is not
        held up behind it."""


@dataclass(frozen=True)
class Watch(Generic[T]):
    """A small read the event listener of a shared store repeats on its own connection, once a second
    and at once after each (re)connect, handing each result to `seen(result, reconnected)` on its own
    thread: what a lost notification must not leave stale is compared there."""

    op: Callable[[Tx], T]
    seen: Callable[[T, bool], None]


class Store(abc.ABC):
    url: str
    failure: str | None = None  # why writes fail right now (disk full, I/O error), until one succeeds
    shared = False  # whether other processes may use this store at the same time

    @abc.abstractmethod
    async def write(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `op(tx, *args, **kwargs)` in a write transaction; its effects are durable when this returns."""

    @abc.abstractmethod
    async def write_batched(self, op: Callable[[Any, list[Any]], list[T]], item: Any) -> T:
        """Like `write`, but concurrent calls of the same `op` may be handed over together:
        `op(tx, items)` returns one result per item, in order (one multi-row statement for many)."""

    def relay(  # noqa: B027
        self, publish: Callable[[str, dict[str, Any]], None], watch: Watch[Any] | None = None
    ) -> None:
        """Deliver events other processes sharing this store publish to `publish` (kind, payload),
        and run `watch` beside them; a store that one process owns has neither."""

    def broadcast(self, kind: str, payload: dict[str, Any]) -> None:  # noqa: B027
        """Tell the other processes sharing this store of an event this one published."""

    _claimant: str | None = None

    def claimant(self) -> str | None:
        """This process's name in the claims its dispatchers make (`claim_sql`). On a shared store the
        other processes see the name alive for as long as this process lives, and release its claims
        once it is gone; None while they cannot see it (the session that shows it was lost): claim
        nothing meanwhile. A store one process owns answers a fixed name."""
        if self._claimant is None:
            self._claimant = f"dingbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self._claimant

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

    @abc.abstractmethod
    def is_failure(self, exc: BaseException) -> bool:
        """Whether an exception says the store itself cannot work right now (disk full, connection
        lost), as opposed to a fault of one unit of work."""


@contextmanager
def savepoint(tx: Tx, name: str) -> Iterator[None]:
    """Part of a unit of work that is undone alone when it raises (the exception goes on), unless the
    failure ends the whole unit (`Tx.aborts`): then nothing more is run on its transaction."""
    tx.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException as exc:
        if not tx.aborts(exc):
            tx.execute(f"ROLLBACK TO {name}")
            tx.execute(f"RELEASE {name}")
        raise
    tx.execute(f"RELEASE {name}")


CHUNK = 500  # bound parameters per IN list, well under every backend's limit


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`: one statement each, its IN list within the bound."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lock(tx: Tx, name: str, params: Sequence[Any]) -> None:
    """Run the backend's named locking statement; a backend whose one writer makes the lock needless
    names it with an empty statement, which is not run."""
    statement = tx.sql(name)
    if statement:
        tx.execute(statement, params)


def placeholders(n: int) -> str:
    return ",".join("?" * n)
