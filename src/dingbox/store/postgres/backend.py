"""PostgreSQL backend: a connection pool shared by any number of dingbox processes on one database.

Every unit of work runs in its own transaction on a pooled connection in a worker thread (psycopg
releases the GIL while it waits for the server), so writes from many requests and processes run side
by side and PostgreSQL's row locks and unique indexes decide between them. Reads run on a repeatable
read, read-only snapshot: one unit of work sees one state, as on SQLite.

Events cross processes through `LISTEN/NOTIFY` (`relay`, `broadcast`): a listener thread holds one
connection of its own and hands each notification to the process's event bus. On the same connection
it runs the process's watch (the generations of the state processes keep copies of) once a second
and after each reconnect, the safety net for a notification that never arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import IsolationLevel
from psycopg import errors as pg_errors
from psycopg.rows import kwargs_row
from psycopg_pool import ConnectionPool

from dingbox.store.base import Row, Store, StoreError, Watch
from dingbox.store.migrate import migrate_postgres
from dingbox.store.postgres.presence import Presence
from dingbox.store.postgres.statements import STATEMENTS

T = TypeVar("T")
log = logging.getLogger("dingbox.store")

CHANNEL = "dingbox_events"
NOTIFY_LIMIT = 7900  # bytes of a NOTIFY payload; PostgreSQL refuses 8000 and more
WATCH_SECONDS = 1.0  # how often the listener runs the watch
_RETRIES = 5  # a unit of work that lost a serialization or deadlock race runs again, this many times

_compiled: dict[str, str] = {}


def compile_sql(sql: str) -> str:
    """`?` parameter marks to PostgreSQL's own numbered ones (`$1`, `$2`, …) outside quoted text; once
    per statement text.

    Statements run on raw cursors, which hand the text to the server as it is: psycopg's own `%s`
    marks cost a parse of the text on every execution once a statement has more than 50 parameters
    (a multi-row INSERT of accepted tasks, an IN list), which was most of what writing a batch of
    accepts cost in Python.
    """
    found = _compiled.get(sql)
    if found is not None:
        return found
    out: list[str] = []
    quote: str | None = None
    marks = 0
    for char in sql:
        if quote:
            if char == quote:
                quote = None
            out.append(char)
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            marks += 1
            out.append(f"${marks}")
        else:
            out.append(char)
    found = _compiled[sql] = "".join(out)
    return found


class PostgresTx:
    """One unit of work's statements on its connection.

    Consecutive `insert_rows` into one table share one COPY, kept open across the calls: a fan-out
    that writes its rows a chunk at a time streams them all in one COPY, which the server stores
    while the next chunk is being decided, instead of starting, waiting for and ending a COPY per
    chunk. Any other statement, and the end of the unit of work, ends the COPY first, so every
    statement sees (and a conflict fails on) the rows written before it.
    """

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.cursor: psycopg.RawCursor[Row] = psycopg.RawCursor(conn)
        self._copying: tuple[str, tuple[str, ...]] | None = None  # the table and columns of the open COPY
        self._copy: psycopg.Copy | None = None
        self._copy_block: contextlib.ExitStack | None = None

    def sql(self, name: str) -> str:
        return STATEMENTS[name]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.end_copy()
        self.cursor.execute(compile_sql(sql), params)
        return self.cursor.rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.end_copy()
        rows = list(rows)
        if rows:
            self.cursor.executemany(compile_sql(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self.end_copy()
        self.cursor.execute(compile_sql(sql), params)
        return self.cursor.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.end_copy()
        self.cursor.execute(compile_sql(sql), params)
        return self.cursor.fetchall()

    def records(self, cls: Callable[..., T], sql: str, params: Sequence[Any] = ()) -> list[T]:
        self.end_copy()
        with psycopg.RawCursor(self.conn, row_factory=kwargs_row(cls)) as cursor:
            cursor.execute(compile_sql(sql), params)
            return cursor.fetchall()

    def record(self, cls: Callable[..., T], sql: str, params: Sequence[Any] = ()) -> T | None:
        self.end_copy()
        with psycopg.RawCursor(self.conn, row_factory=kwargs_row(cls)) as cursor:
            cursor.execute(compile_sql(sql), params)
            return cursor.fetchone()

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        target = (table, tuple(columns))
        if self._copy is None or self._copying != target:
            self.end_copy()
            block = contextlib.ExitStack()
            self._copy = block.enter_context(
                self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN")
            )
            self._copy_block, self._copying = block, target
        write_row = self._copy.write_row
        for row in rows:
            write_row(row)

    def end_copy(self, failure: BaseException | None = None) -> None:
        """End the open COPY, if any: the server has then stored (and checked) every row written.
        With `failure`, abandon it instead, so that the transaction can roll back."""
        block = self._copy_block
        if block is None:
            return
        self._copy = self._copy_block = self._copying = None
        if failure is None:
            block.close()
            return
        with contextlib.suppress(psycopg.Error):  # a lost connection: the failure itself says more
            block.__exit__(type(failure), failure, failure.__traceback__)

    def others_waiting(self) -> bool:
        return False  # no single writer: other units of work run beside this one

    def aborts(self, exc: BaseException) -> bool:
        self.end_copy(exc)
        return store_failure(exc) or _retryable(exc)


# SQLSTATE classes that mean the server or the connection cannot work right now, rather than a
# fault of one statement: connection exceptions, insufficient resources (disk full, out of memory),
# operator intervention (shutdown), system errors.
_FAILURE_CLASSES = ("08", "53", "57", "58", "XX")


def store_failure(exc: BaseException) -> bool:
    if isinstance(exc, StoreError | psycopg.OperationalError | psycopg.InterfaceError):  # PoolTimeout too
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state[:2] in _FAILURE_CLASSES


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected)


def safe_url(url: str) -> str:
    """The URL without its password, for messages and /metrics."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://…"
    host, port, db = info.get("host", ""), info.get("port", ""), info.get("dbname", "")
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{host}{':' + str(port) if port else ''}/{db}"


class PostgresStore(Store):
    shared = True

    def __init__(self, url: str, *, pool_size: int = 8, writable: bool = True) -> None:
        self.url = url
        self.failure: str | None = None
        self.instance = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # names this process's events
        self._where = safe_url(url)
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                migrate_postgres(conn)
                if writable:
                    conn.execute("UPDATE schema_migrations SET version = version WHERE false")
        except psycopg.Error as exc:
            raise StoreError(f"cannot open {self._where}: {_first_line(exc)}") from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"connect_timeout": 10},
            open=True,
            name="dingbox",
            timeout=30,
        )
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="dingbox-pg")
        self._listener: _Listener | None = None
        self._notifier: _Notifier | None = None
        self._presence: Presence | None = None
        self._closed = False
        # write_batched: the calls waiting for each op's next transaction, and the task running them
        self._waiting: dict[Callable[..., Any], list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._writers: dict[Callable[..., Any], asyncio.Task[None]] = {}

    # -- units of work ------------------------------------------------------------------------------

    def _run(self, op: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], read: bool) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        for attempt in range(_RETRIES + 1):
            try:
                with self._pool.connection() as conn:
                    if read:  # said in the BEGIN itself, rather than by a statement of its own
                        conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
                    try:
                        with conn.transaction():
                            tx = PostgresTx(conn)
                            try:
                                result = op(tx, *args, **kwargs)
                            except BaseException as exc:
                                tx.end_copy(exc)
                                raise
                            tx.end_copy()
                    finally:
                        if read:
                            with contextlib.suppress(psycopg.Error):  # a lost connection leaves the pool
                                conn.isolation_level = conn.read_only = None
            except BaseException as exc:
                if _retryable(exc) and attempt < _RETRIES:
                    time.sleep(0.005 * (attempt + 1))
                    continue
                if store_failure(exc) and not read:
                    self._fail(_first_line(exc))
                if store_failure(exc) and not isinstance(exc, StoreError):
                    raise StoreError(f"the store failed: {_first_line(exc)}") from exc
                raise
            if not read and self.failure is not None:
                log.warning("store %s writes again", self._where)
                self.failure = None
            return result
        raise AssertionError("unreachable")

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            log.error("store %s cannot write: %s", self._where, reason)
        self.failure = reason

    async def write(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, op, args, kwargs, False)

    async def write_batched(self, op: Callable[[Any, list[Any]], list[T]], item: Any) -> T:
        """Calls of one op share a transaction: while one runs, those arriving meanwhile wait and go
        together in the next, so under load an accept pays a share of one transaction's round trips,
        thread hand-over and commit rather than a whole one (a group commit, as SQLite's writer does)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.setdefault(op, []).append((item, future))
        if op not in self._writers:
            self._writers[op] = loop.create_task(self._write_waiting(op))
        return await future

    async def _write_waiting(self, op: Callable[[Any, list[Any]], list[Any]]) -> None:
        batch: list[tuple[Any, asyncio.Future[Any]]] = []
        try:
            while batch := self._waiting.pop(op, []):
                try:
                    results = await self.write(op, [item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        except BaseException as exc:  # cancelled with the loop: nobody may wait for ever
            for _, future in batch + self._waiting.pop(op, []):
                if not future.done():
                    future.set_exception(StoreError(f"the store stopped: {type(exc).__name__}"))
            raise
        finally:
            del self._writers[op]

    async def read(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, op, args, kwargs, True)

    def write_sync(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._run(op, args, kwargs, False)

    def read_sync(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._run(op, args, kwargs, True)

    def is_failure(self, exc: BaseException) -> bool:
        return store_failure(exc)

    def describe(self) -> dict[str, str]:
        return {"backend": "postgresql", "synchronous": "on"}

    def claimant(self) -> str | None:
        """Named by a session this process holds open from its first claim to its end (`presence.py`)."""
        if self._presence is None:
            if self._closed:
                return None
            self._presence = Presence(self.url, f"dingbox-{self.instance}")
        return self._presence.name if self._presence.alive else None

    # -- events across processes --------------------------------------------------------------------

    def relay(self, publish: Callable[[str, dict[str, Any]], None], watch: Watch[Any] | None = None) -> None:
        if self._listener is None:
            self._listener = _Listener(self.url, self.instance, publish, watch)

    def broadcast(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue a NOTIFY to the other processes; a thread of its own sends it (never the event loop),
        in order, after the event's own transaction has committed."""
        if self._notifier is None:
            self._notifier = _Notifier(self._pool, self.instance)
        self._notifier.send(kind, payload)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._notifier is not None:
            self._notifier.stop()
        if self._listener is not None:
            self._listener.stop()
        if self._presence is not None:
            self._presence.stop()
        self._executor.shutdown(wait=True)
        self._pool.close()


def notifications(instance: str, kind: str, payload: dict[str, Any]) -> list[str]:
    """The NOTIFY payloads of one event: split along its longest list (the messages of a delivery)
    until each fits PostgreSQL's limit."""
    body = orjson.dumps({"from": instance, "kind": kind, "payload": payload}).decode()
    if len(body.encode()) <= NOTIFY_LIMIT:
        return [body]
    lists = [(len(v), k) for k, v in payload.items() if isinstance(v, list) and len(v) > 1]
    if not lists:
        log.warning("event %s too large to relay (%d bytes)", kind, len(body))
        return []
    _, key = max(lists)
    half = len(payload[key]) // 2
    return notifications(instance, kind, {**payload, key: payload[key][:half]}) + notifications(
        instance, kind, {**payload, key: payload[key][half:]}
    )


class _Notifier:
    """Sends NOTIFYs from a queue on its own thread, many per transaction when they pile up."""

    def __init__(self, pool: ConnectionPool, instance: str) -> None:
        self._pool, self._instance = pool, instance
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dingbox-pg-notify", daemon=True)
        self._thread.start()

    def send(self, kind: str, payload: dict[str, Any]) -> None:
        self._queue.put((kind, payload))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            items = [item]
            while item is not None and not self._queue.empty() and len(items) < 200:
                item = self._queue.get_nowait()
                items.append(item)
            bodies = [b for i in items if i is not None for b in notifications(self._instance, *i)]
            if bodies:
                try:
                    with self._pool.connection() as conn, conn.transaction():
                        # one pipelined round trip for them all, in order (psycopg's executemany)
                        conn.cursor().executemany("SELECT pg_notify(%s, %s)", [(CHANNEL, b) for b in bodies])
                except psycopg.Error as exc:  # (PoolTimeout is one) local subscribers have it already
                    log.warning("%d events not relayed: %s", len(bodies), _first_line(exc))
            if items[-1] is None:
                return


class _Listener:
    """LISTENs on its own connection in a thread; reconnects after a lost connection. Runs the watch
    between notifications: at once after each (re)connect (notifications sent while it was away are
    lost for good), then every WATCH_SECONDS."""

    def __init__(
        self,
        url: str,
        instance: str,
        publish: Callable[[str, dict[str, Any]], None],
        watch: Watch[Any] | None,
    ) -> None:
        self._url, self._instance, self._publish, self._watch = url, instance, publish, watch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dingbox-pg-listen", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # named so an operator (or a test) can tell the listener of a process in pg_stat_activity
                name = f"dingbox listener {os.getpid()}"
                with psycopg.connect(
                    self._url, autocommit=True, connect_timeout=10, application_name=name
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    reconnected, watch_at = True, 0.0
                    while not self._stop.is_set():
                        if self._watch is not None and time.monotonic() >= watch_at:
                            self._run_watch(self._watch, conn, reconnected)
                            reconnected, watch_at = False, time.monotonic() + WATCH_SECONDS
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("event listener lost its connection: %s", _first_line(exc))
                self._ready.set()
                self._stop.wait(1.0)

    def _deliver(self, text: str) -> None:
        try:
            note = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if note.get("from") == self._instance:
            return
        try:
            self._publish(note["kind"], note.get("payload"))
        except Exception:  # a subscriber's fault must not end the relay
            log.exception("relayed event %s failed", note.get("kind"))

    @staticmethod
    def _run_watch(watch: Watch[Any], conn: psycopg.Connection[Any], reconnected: bool) -> None:
        result = watch.op(PostgresTx(conn))  # a failing read is a lost connection: reconnect
        try:
            watch.seen(result, reconnected)
        except Exception:
            log.exception("the store watch failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
