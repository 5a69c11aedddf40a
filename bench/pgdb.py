"""The run's PostgreSQL databases: created on the server of `--postgres-url` under a name of this run,
dropped at its end (also when a figure fails), and the CPU their server processes use."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from harness import cpu_seconds


class Databases:
    """Scratch databases named `<prefix><pid>_<part>`, made and dropped through the maintenance URL."""

    def __init__(self, maintenance_url: str, prefix: str) -> None:
        self.maintenance_url = maintenance_url
        self.prefix = f"{prefix}{os.getpid()}_"
        self.made: list[str] = []

    def check(self) -> str | None:
        """Why the server cannot be used, or None."""
        try:
            with psycopg.connect(self.maintenance_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return str(exc).strip().splitlines()[0]
        return None

    def create(self, part: str) -> str:
        """A new empty database for one part of the run; gives its URL."""
        name = self.prefix + part
        with psycopg.connect(self.maintenance_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.made.append(name)
        return self.url(name)

    def url(self, name: str) -> str:
        parts = urlsplit(self.maintenance_url)
        return urlunsplit(parts._replace(path="/" + name))

    def drop_all(self) -> None:
        with psycopg.connect(self.maintenance_url, autocommit=True) as conn:
            for name in self.made:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.made.clear()


class BackendCPU:
    """CPU used by the server processes (backends) connected to one database between `start` and
    `stop`: the database's share of the work, beside the dingbox processes' own."""

    def __init__(self, maintenance_url: str, url: str) -> None:
        self._maintenance_url = maintenance_url
        self._dbname = urlsplit(url).path.lstrip("/")
        self._before: dict[int, float] = {}

    def _pids(self) -> list[int]:
        with psycopg.connect(self._maintenance_url, autocommit=True) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self._dbname,))
            return [int(pid) for (pid,) in rows.fetchall()]

    def start(self) -> None:
        self._before = {pid: cpu_seconds(pid) for pid in self._pids()}

    def stop(self) -> float:
        """Seconds of CPU since `start`: backends that started meanwhile count whole."""
        return sum(cpu_seconds(pid) - self._before.get(pid, 0.0) for pid in self._pids())
