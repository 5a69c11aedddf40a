"""Logging for `dingbox serve`: one line per accepted task and per finished dispatch at INFO, so each
line must be cheap.

Python's logging looks up the caller's file and line, the thread and the process for every record,
and formats the time with strftime; none of it is printed here. Following the logging HOWTO's
"Optimization" advice those lookups are switched off, and the timestamp's seconds are formatted once
per second.

Writing was the larger cost: one `write` system call per line, half of what a line cost under load
(docs/architecture.md, "Where the time goes"). Lines below WARNING logged on the event loop's thread
are gathered and written once per turn of the loop, after the callbacks that logged them; anything
else (a warning, an error, a line from another thread) writes what is gathered and itself at once, so
the order of lines is kept and a problem is never held back. A SIGKILL can lose the INFO lines of the
loop's last turn, never more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
GATHER_MOST = 64 * 1024  # characters gathered before they are written without waiting for the turn's end


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(FORMAT)
        # the second last formatted and its text, as one pair: threads share the formatter, and `info`
        # runs outside the handler's lock, so the pair is read and replaced whole
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """`created` as the lines print it (LogRecord's msecs: the fraction, truncated)."""
        second, text = self._second
        if second != int(created):
            second = int(created)
            text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = (second, text)
        return f"{text},{int((created - second) * 1000):03d}"


class GatheringHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the event loop's routine lines once per turn of the loop."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._gathered: list[str] = []
        self._size = 0

    def emit(self, record: logging.LogRecord) -> None:  # called under self.lock (Handler.handle)
        try:
            line = self.format(record) + self.terminator
            if record.levelno >= logging.WARNING:
                self._gathered.append(line)
                self._write_gathered()
            else:
                self._gather(line)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def gather(self, line: str) -> None:
        """A routine line, already formatted (`info`)."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self._gather(line)
            except Exception:  # as logging does: a failing stream never fails the caller
                self.handleError(logging.makeLogRecord({"msg": line}))

    def _gather(self, line: str) -> None:
        loop = asyncio._get_running_loop()
        self._gathered.append(line)
        self._size += len(line)
        if loop is None or self._size > GATHER_MOST:
            self._write_gathered()
        elif len(self._gathered) == 1:
            loop.call_soon(self._end_of_turn)

    def _end_of_turn(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_gathered()

    def _write_gathered(self) -> None:
        if not self._gathered:
            return
        text, self._gathered, self._size = "".join(self._gathered), [], 0
        self.stream.write(text)
        self.stream.flush()

    def flush(self) -> None:  # logging.shutdown flushes every handler at exit
        with self.lock:  # type: ignore[union-attr]
            if self.stream is not None and not self.stream.closed:
                self._write_gathered()
        super().flush()


_routine: tuple[GatheringHandler, _Formatter] | None = None  # where `info` writes, once `configure` set it


def info(logger: logging.Logger, msg: str, *args: object) -> None:
    """`logger.info(msg, *args)` for the lines logged on every send, with the same text.

    Building a LogRecord and passing it through the logger, the handler and the formatter is most of
    what a line costs (a line of the accept's form, logged in a loop: 4.7 µs that way, 1.9 µs this);
    when `configure` installed the only handler and nothing filters, the line is formatted here, in
    the handler's own format, and handed to that handler's gathering.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    routine = _routine
    if routine is None or logger.filters or logger.handlers or not logger.propagate:
        logger.info(msg, *args)
        return
    handler, formatter = routine
    fields = {"asctime": formatter.stamp(time.time()), "levelname": "INFO", "name": logger.name}
    handler.gather(FORMAT % {**fields, "message": msg % args} + handler.terminator)


def configure(level: str) -> None:
    global _routine
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no caller lookup: the format prints no file or line
    handler, formatter = GatheringHandler(), _Formatter()
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    root = logging.getLogger()
    alone = root.handlers == [handler] and not root.filters and not handler.filters
    _routine = (handler, formatter) if alone else None
