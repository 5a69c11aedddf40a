"""SQLite backend: WAL, durable group commits from one writer thread, readers on their own connections.

Why one writer thread: SQLite admits one writer at a time, so funnelling every unit of work through
one connection removes lock contention and lets concurrent requests share a single commit — the
writer drains its queue, runs each job under its own SAVEPOINT (a failing job rolls back alone) and
commits them together before answering any of them. That is what keeps the accept path close to the
speed of the HTTP stack while every accepted task is in the WAL before its id is returned.

A store that fails (disk full, I/O error, a file-size limit) fails the group's jobs with StoreError and
keeps the writer running: the next group tries again, and `failure` says why until a commit succeeds.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from dingbox.store.base import Row, Store, StoreError, StoreLocked, placeholders
from dingbox.store.migrate import migrate_sqlite
from dingbox.store.sqlite.statements import STATEMENTS

T = TypeVar("T")
log = logging.getLogger("dingbox.store")
_MAX_GROUP = 256
WAL_RESTART_FRAMES = 10_000
RESTART_RESIDUAL_ROWS = 2_000  # most rows the writer copies back itself to restart the WAL
# Nor does the writer restart the WAL within this long of a large write: while a fan-out is written,
# a restart's fsyncs stalled an accept behind the writer for up to 1.3 s in the bench (3 fan-out runs
# of 12 with restarts, none of 4 without).
RESTART_QUIET_SECONDS = 2.0
_STOP = object()


class SQLiteTx:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, waiting: Callable[[], bool] = lambda: False) -> None:
        self.conn = conn
        self.others_waiting = waiting

    def sql(self, name: str) -> str:
        return STATEMENTS[name]

    def aborts(self, exc: BaseException) -> bool:
        return store_failure(exc)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def records(self, cls: Callable[..., T], sql: str, params: Sequence[Any] = ()) -> list[T]:
        cursor = self.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [cls(**dict(zip(names, row, strict=True))) for row in cursor]

    def record(self, cls: Callable[..., T], sql: str, params: Sequence[Any] = ()) -> T | None:
        cursor = self.conn.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return cls(**{column[0]: value for column, value in zip(cursor.description, row, strict=True)})

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        marks = placeholders(len(columns))
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative.db` and `sqlite:////absolute.db`, as SQLAlchemy spells them."""
    if not url.startswith("sqlite:///"):
        raise StoreError(f"not a SQLite URL: {url!r}")
    rest = url[len("sqlite:///") :]
    if not rest:
        raise StoreError(f"SQLite URL names no file: {url!r}")
    return Path(rest)


# Primary result codes that mean the store itself cannot work right now, rather than a bad statement.
_STORE_FAILURES = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_NOTADB,
}
SYNCHRONOUS = ("normal", "full")


def store_failure(exc: BaseException) -> bool:
    """Whether an exception says the store cannot work (as opposed to a fault of one unit of work)."""
    if isinstance(exc, StoreError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _STORE_FAILURES


def _connect(path: Path, synchronous: str = "normal") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[SYNCHRONOUS.index(synchronous)]}")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA cache_size = -65536")
    # A statement under a savepoint keeps its undo journal in a temporary file by default: opened,
    # unlinked and closed for every group of accepts (6 % of the writer's time). Memory will do.
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


class _Job:
    """A unit of work for the writer, answered through a thread future (sync callers) or an asyncio
    future of the caller's loop; the latter are settled in one loop callback per group."""

    __slots__ = ("op", "args", "kwargs", "future", "loop", "result", "batched")

    def __init__(
        self,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop | None,
        batched: bool = False,
    ) -> None:
        self.op = op
        self.args = args
        self.kwargs = kwargs
        self.loop = loop
        self.batched = batched
        self.future: Future[Any] | asyncio.Future[Any] = loop.create_future() if loop else Future()
        self.result: tuple[bool, Any] = (False, None)


async def _awaitable(job: _Job) -> Any:
    future = job.future
    assert isinstance(future, asyncio.Future)
    return await future


def _units(jobs: list[_Job]) -> Iterator[list[_Job]]:
    """Consecutive batched jobs of one operation run as one call (one multi-row statement)."""
    unit: list[_Job] = []
    for job in jobs:
        if unit and not (job.batched and unit[0].batched and job.op is unit[0].op):
            yield unit
            unit = []
        unit.append(job)
    if unit:
        yield unit


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back whatever is open; SQLite may already have rolled back a failed COMMIT itself."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():  # the awaiting request went away
            continue
        ok, value = job.result
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)


class _Checkpointer:
    """Copies the WAL back into the database on its own connection and thread (PASSIVE: it never
    blocks the writer or readers), a moment after commits, so no commit pays for a checkpoint: with
    SQLite's automatic checkpoints the commit that crosses the threshold copies every page first,
    and the sends waiting behind it wait for that too."""

    PAUSE = 0.25  # seconds between checkpoints while commits keep coming: lets page versions coalesce

    def __init__(self, path: Path, synchronous: str) -> None:
        self._path, self._synchronous = path, synchronous
        # Only a writer restarts the WAL, and only once every frame is copied; under a steady load
        # some commit always lands during the checkpointer's pass or pause, and the WAL grew without
        # end (65 MB/s under the accept benchmark, each write into new file blocks the kernel zeroes
        # first). Once a pass has copied a WAL this large, the writer copies the frames committed
        # since, after a group (`restart_wal`), so its next commit starts the WAL from the beginning:
        # but only while those are few (`RESTART_RESIDUAL_ROWS`). After a fan-out's commit they are
        # the whole fan-out, which the accepts behind the writer must not wait for (1.1 s seen in the
        # bench); the next pass copies it instead.
        self.restart_due: int | None = None  # the writer's rows changed when that pass began
        self._changes = 0  # rows the writer had changed at its last commit
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dingbox-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def committed(self, changes: int) -> None:
        """The writer committed, having changed `changes` rows in all (`total_changes`)."""
        self._changes = changes
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = _connect(self._path, self._synchronous)
        try:
            while True:
                self._wake.wait()
                if self._stop.is_set():
                    return
                self._wake.clear()
                try:
                    changes = self._changes
                    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.restart_due = changes if frames >= WAL_RESTART_FRAMES else None
                    log.debug(
                        "checkpoint of %s: %d of %d WAL frames in the database", self._path, copied, frames
                    )
                except sqlite3.Error as exc:  # a failing disk: the writer reports it; try again later
                    log.debug("checkpoint of %s failed: %s", self._path, exc)
                if self._stop.wait(self.PAUSE):
                    return
        finally:
            conn.close()


class SQLiteStore(Store):
    def __init__(
        self,
        url: str,
        *,
        lock: bool = True,
        readers: int = 4,
        synchronous: str = "normal",
        writable: bool = True,
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise StoreError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}")
        self.url = url
        self.synchronous = synchronous
        self.failure: str | None = None  # why the last commit failed, until one succeeds
        self.path = sqlite_path(url)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        self._lock_file: int | None = None
        if lock:
            self._take_lock()
        try:
            self._writer_conn = _connect(self.path, synchronous)
            self._writer_conn.execute("PRAGMA journal_mode = WAL")
            # the checkpointer thread copies the WAL back, so no commit waits for a checkpoint
            self._writer_conn.execute("PRAGMA wal_autocheckpoint = 0")
            # the WAL grows to the largest burst written without a pause (a fan-out); once it is
            # restarted, give the disk back beyond 64 MiB
            self._writer_conn.execute("PRAGMA journal_size_limit = 67108864")
            migrate_sqlite(self._writer_conn)
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        if writable:
            try:  # matches no row, yet SQLite refuses it on a read-only file or directory like any write
                self._writer_conn.execute("UPDATE schema_migrations SET version = version WHERE 0")
            except sqlite3.Error as exc:
                self._writer_conn.close()
                self._release_lock()
                raise StoreError(f"cannot write {self.path}: {exc}") from None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._checkpointer = _Checkpointer(self.path, synchronous)
        self._writer = threading.Thread(target=self._write_loop, name="dingbox-sqlite-writer", daemon=True)
        self._writer.start()
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_conns_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="dingbox-sqlite-reader")
        self._closed = False

    # -- locking: one serve per file ----------------------------------------------------------------

    def _take_lock(self) -> None:
        lock_path = str(self.path) + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(f"{self.path} is in use by another dingbox process") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_file = fd

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    # -- writing --------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = self._writer_conn
        jobs_queue = self._queue
        tx = SQLiteTx(conn, lambda: not jobs_queue.empty())
        large_at = 0.0  # when a group last changed many rows (a fan-out's write)
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs: list[_Job] = [first]
            stop_after = False
            while len(jobs) < _MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                jobs.append(nxt)
            changes = conn.total_changes
            try:
                self._run_group(conn, tx, jobs)
            except BaseException as exc:  # the writer must outlive any group: later writes depend on it
                _rollback(conn)
                self._fail(f"{type(exc).__name__}: {exc}")
                self._answer(jobs, StoreError(f"the store failed: {exc}"))
            if stop_after:
                return
            due = self._checkpointer.restart_due  # after the group's answers: nobody waits for this
            if conn.total_changes - changes > RESTART_RESIDUAL_ROWS:
                large_at = time.monotonic()
            elif (
                due is not None
                and conn.total_changes - due <= RESTART_RESIDUAL_ROWS
                and time.monotonic() - large_at > RESTART_QUIET_SECONDS
            ):
                self._restart_wal(conn)

    def _restart_wal(self, conn: sqlite3.Connection) -> None:
        """Copy the frames committed since the checkpointer's last pass, so that the next commit
        restarts the WAL (see `_Checkpointer.restart_due`); while a reader on an older snapshot or
        the checkpointer holds some back, try again after the next group."""
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # a failing disk: the next commit reports it
            log.debug("checkpoint of %s by the writer failed: %s", self.path, exc)
            return
        if not busy and copied == frames:
            self._checkpointer.restart_due = None

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            log.error("store %s cannot write: %s", self.path, reason)
        self.failure = reason

    def _run_group(self, conn: sqlite3.Connection, tx: SQLiteTx, jobs: list[_Job]) -> None:
        """One transaction for the group; each unit under a SAVEPOINT when there is more than one.

        A lone unit needs none (its failure is the transaction's), and every statement saved matters:
        the writer must win the GIL back from the event loop after each one. A unit that fails because
        the store does (disk full, I/O error) fails the whole group: the savepoint cannot be trusted.
        """
        units = list(_units(jobs))
        isolate = len(units) > 1
        conn.execute("BEGIN IMMEDIATE")
        for unit in units:
            if isolate:
                conn.execute("SAVEPOINT job")
            try:
                if unit[0].batched:
                    results = unit[0].op(tx, [job.args[0] for job in unit])
                    for job, result in zip(unit, results, strict=True):
                        job.result = (True, result)
                else:
                    job = unit[0]
                    job.result = (True, job.op(tx, *job.args, **job.kwargs))
            except BaseException as exc:  # the unit's own failure; the rest of the group still commits
                if store_failure(exc):
                    raise
                if isolate:
                    conn.execute("ROLLBACK TO job")
                for job in unit:
                    job.result = (False, exc)
            if isolate:
                conn.execute("RELEASE job")
        conn.execute("COMMIT" if isolate or units[0][0].result[0] else "ROLLBACK")
        self._checkpointer.committed(conn.total_changes)
        if self.failure is not None:
            log.warning("store %s writes again", self.path)
            self.failure = None
        self._answer(jobs, None)

    @staticmethod
    def _answer(jobs: list[_Job], failure: Exception | None) -> None:
        if failure is not None:
            for job in jobs:
                job.result = (False, failure)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in jobs:
            if job.loop is None:
                ok, value = job.result
                future = job.future
                assert isinstance(future, Future)
                future.set_result(value) if ok else future.set_exception(value)
            else:
                by_loop.setdefault(job.loop, []).append(job)
        for loop, loop_jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, loop_jobs)
            except RuntimeError:  # the loop closed while the job ran
                pass

    def _submit(self, job: _Job) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        if not self._writer.is_alive():
            raise StoreError("the store's writer has stopped")
        self._queue.put(job)

    async def write(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        job = _Job(op, args, kwargs, asyncio.get_running_loop())
        self._submit(job)
        result: T = await _awaitable(job)
        return result

    async def write_batched(self, op: Callable[[Any, list[Any]], list[T]], item: Any) -> T:
        job = _Job(op, (item,), {}, asyncio.get_running_loop(), batched=True)
        self._submit(job)
        result: T = await _awaitable(job)
        return result

    def write_sync(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        job = _Job(op, args, kwargs, None)
        self._submit(job)
        future = job.future
        assert isinstance(future, Future)
        result: T = future.result()
        return result

    # -- reading ----------------------------------------------------------------------------------------

    def _reader_tx(self) -> SQLiteTx:
        tx: SQLiteTx | None = getattr(self._local, "tx", None)
        if tx is None:
            conn = _connect(self.path, self.synchronous)
            conn.execute("PRAGMA query_only = ON")
            with self._reader_conns_lock:
                self._reader_conns.append(conn)
            tx = self._local.tx = SQLiteTx(conn)
        return tx

    def _run_read(self, op: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        tx = self._reader_tx()
        tx.conn.execute("BEGIN")
        try:
            return op(tx, *args, **kwargs)
        finally:
            tx.conn.execute("COMMIT")

    async def read(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, op, args, kwargs)

    def read_sync(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._readers.submit(self._run_read, op, args, kwargs).result()

    def describe(self) -> dict[str, str]:
        return {"backend": "sqlite", "synchronous": self.synchronous}

    def is_failure(self, exc: BaseException) -> bool:
        return store_failure(exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join()
        self._checkpointer.stop()
        self._readers.shutdown(wait=True)
        with self._reader_conns_lock:
            for conn in self._reader_conns:
                conn.close()
        self._writer_conn.close()
        self._release_lock()
