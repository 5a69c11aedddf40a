"""What every benchmark shares: the printed figure, pinning, process CPU and memory, wrk, the servers.

Servers run as users run them: `dingbox serve` with its defaults plus `--limits unlimited`, started
through the test suite's ServerProcess, pinned to one core; load generators run on the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import ServerProcess  # noqa: E402

SEND = "/topapi/message/corpconversation/asyncsend_v2"
PROGRESS = "/topapi/message/corpconversation/getsendprogress"
RESULT = "/topapi/message/corpconversation/getsendresult"
SERVER_CORE, LOAD_CORE = "0", "1"
CORES = os.cpu_count() or 1
DEFAULTS = ["--limits", "unlimited", "--log-level", "info"]
EXTRA: list[str] = []  # --serve-arg values: measure a non-default setting (e.g. --synchronous full)

# Each request carries new content (wrk's counter), as a real app's notifications would.
LUA = """
local n = 0
request = function()
  n = n + 1
  local body = '{"agent_id":1001,"userid_list":"alice","msg":{"msgtype":"text","text":{"content":"bench '
    .. n .. ' ' .. math.random(1, 1000000000) .. '"}}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
"""


@dataclass
class Figure:
    """One printed line: a value, its unit, its target and whether it is met."""

    name: str
    value: float
    unit: str
    target: str
    met: bool
    detail: str = ""

    def __str__(self) -> str:
        mark = "met" if self.met else "NOT MET"
        value = f"{self.value:>10.2f} {self.unit:<6}"
        return f"{self.name:<38} {value} target {self.target:<16} {mark:<8} {self.detail}"


def pin(pid: int, core: str) -> None:
    """Pin every thread of a process to one core (or a list such as "0,1")."""
    subprocess.run(["taskset", "-a", "-p", "-c", core, str(pid)], check=True, capture_output=True)


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used; 0 for one that is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_dingbox(db: Path | str, args: Sequence[str], core: str | None = SERVER_CORE) -> ServerProcess:
    """`dingbox serve` on `db` (a SQLite path or a PostgreSQL URL), pinned to `core` unless None."""
    server = ServerProcess(db, DEFAULTS + EXTRA + list(args)).start(timeout=120)
    assert server.proc is not None
    if core is not None:
        pin(server.proc.pid, core)
    return server


def token(base: str, key: str = "demo-key", secret: str = "demo-secret") -> str:
    body = requests.get(base + "/gettoken", params={"appkey": key, "appsecret": secret}).json()
    return str(body["access_token"])


def send_url(server: ServerProcess) -> str:
    return f"{server.url}{SEND}?access_token={token(server.url)}"


def drain(server: ServerProcess, timeout: float = 600) -> float:
    """Seconds until nothing is pending, as a client asking the server sees it."""
    start = time.perf_counter()
    drained = requests.post(server.url + "/api/v1/dispatch/drain", params={"timeout": timeout})
    assert drained.status_code == 200, drained.text
    return time.perf_counter() - start


class Wrk:
    """One wrk run (1 thread, `connections` connections, unique content per request) on the load core,
    started now and read with `result`."""

    def __init__(self, url: str, seconds: int, connections: int = 16) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA)
        self._script = script.name
        self._proc = subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name]
            + [url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> tuple[float, int]:
        """(requests/s, requests done)."""
        out, err = self._proc.communicate()
        os.unlink(self._script)
        if self._proc.returncode != 0:
            raise RuntimeError(f"wrk failed:\n{out}{err}")
        rps = done = None
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                rps = float(line.split()[1])
            if "requests in" in line:
                done = int(line.split()[0])
            if "Non-2xx" in line:
                raise RuntimeError("wrk saw errors:\n" + out)
        if rps is None or not done:
            raise RuntimeError("wrk printed no Requests/sec:\n" + out)
        return rps, done


def wrk(url: str, seconds: int, pid: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of one wrk run with 16 connections on the load core."""
    before = cpu_seconds(pid)
    rps, done = Wrk(url, seconds).result()
    return rps, (cpu_seconds(pid) - before) / done * 1e6
