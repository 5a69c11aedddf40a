"""Logging for `dingbox serve`: one line per accepted task and per finished dispatch at INFO, so each
line must be cheap.

Python's logging looks up the caller's file and line, the thread and the process for every record,
and formats the time with strftime; none of it is printed here. Following the logging HOWTO's
"Optimization" advice those lookups are switched off, and the timestamp's seconds are formatted once
per second.
"""

from __future__ import annotations

import logging
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int(record.msecs):03d}"


def configure(level: str) -> None:
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no caller lookup: the format prints no file or line
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
