"""dingbox benchmarks, run as users run the server, each figure printed beside its target.

The server runs with its defaults (one dispatcher, INFO logging, `synchronous` normal) plus
`--limits unlimited`; every figure is taken where a client would see it, into stores that already
hold data, and references are measured in the same run. Medians of the rounds unless said otherwise.

1. accept: asyncsend_v2 requests/s (wrk, 16 connections, unique content per request) against a bare
   Starlette app on the same uvicorn, 3 rounds of 10 s into one server with no drain between; the
   server is pinned to core 0 and wrk to core 1 (taskset). Targets: ratio >= 0.5, round 3 >= 0.8 x round 1.
2. drain: after that load, time until nothing is pending. Target <= 30 s.
3. fan-out: to_all_user to 100,000 users in 100 departments, send until getsendprogress says status 2,
   3 rounds into one store, against a raw executemany of 100,000 rows into a minimal table (one unique
   and one secondary index), also 3 rounds into one file. Targets: median ratio <= 3, and
   round 3 <= 1.3 x round 1.
4. getsendresult of such a task (100,000 unread). Target: median <= 100 ms.
5. accept latency while a fan-out runs: 50 sends one after another during each round. Target: max <= 100 ms.
6. server RSS after the 300,000 deliveries of the fan-outs. Target <= 300 MB.
7. inbox API p95 for a user with 10,000 messages (first pages, unread filter, deep pages). Target <= 50 ms.

Usage: python bench/run.py [--users N] [--seconds S] [--rounds R] [--only accept|fanout]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import ServerProcess, free_port  # noqa: E402

SEND = "/topapi/message/corpconversation/asyncsend_v2"
PROGRESS = "/topapi/message/corpconversation/getsendprogress"
RESULT = "/topapi/message/corpconversation/getsendresult"
SERVER_CORE, LOAD_CORE = "0", "1"
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
DEFAULTS = ["--limits", "unlimited", "--log-level", "info"]


class Figure:
    """One printed line: a value, its unit, its target and whether it is met."""

    def __init__(self, name: str, value: float, unit: str, target: str, met: bool, detail: str = "") -> None:
        self.name, self.value, self.unit, self.target, self.met, self.detail = (
            name,
            value,
            unit,
            target,
            met,
            detail,
        )

    def __str__(self) -> str:
        mark = "met" if self.met else "NOT MET"
        value = f"{self.value:>10.2f} {self.unit:<6}"
        return f"{self.name:<34} {value} target {self.target:<16} {mark:<8} {self.detail}"


def pin(pid: int, core: str) -> None:
    """Pin every thread of a process to one core."""
    subprocess.run(["taskset", "-a", "-p", "-c", core, str(pid)], check=True, capture_output=True)


EXTRA: list[str] = []  # --serve-arg values: measure a non-default setting (e.g. --synchronous full)


def start_dingbox(db: Path, args: list[str]) -> ServerProcess:
    server = ServerProcess(db, DEFAULTS + EXTRA + args).start(timeout=120)
    assert server.proc is not None
    pin(server.proc.pid, SERVER_CORE)
    return server


def token(base: str, key: str = "demo-key", secret: str = "demo-secret") -> str:
    body = requests.get(base + "/gettoken", params={"appkey": key, "appsecret": secret}).json()
    return str(body["access_token"])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wrk(url: str, seconds: int, pid: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of one wrk run with 16 connections on the load core."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    before = cpu_seconds(pid)
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c16", f"-d{seconds}s", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - before
    os.unlink(script.name)
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
    return rps, cpu / done * 1e6


def start_reference() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "reference_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=Path(__file__).parent,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.post(url + SEND, data=b"{}", timeout=1)
            pin(proc.pid, SERVER_CORE)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("reference app did not start")


def bench_accept(workdir: Path, seconds: int, rounds: int) -> list[Figure]:
    server = start_dingbox(workdir / "accept.db", [])
    assert server.proc is not None
    url = f"{server.url}{SEND}?access_token={token(server.url)}"
    reference, ref_url = start_reference()
    ours, theirs = [], []
    try:
        wrk(ref_url + SEND, 1, reference.pid)  # warm both up
        wrk(url, 1, server.proc.pid)
        for _ in range(rounds):
            theirs.append(wrk(ref_url + SEND, seconds, reference.pid))
        for _ in range(rounds):  # back to back into one server: the backlog grows as users would see it
            ours.append(wrk(url, seconds, server.proc.pid))
        start = time.perf_counter()
        drained = requests.post(server.url + "/api/v1/dispatch/drain", params={"timeout": 600})
        drain = time.perf_counter() - start
        assert drained.status_code == 200, drained.text
    finally:
        reference.send_signal(signal.SIGINT)
        reference.wait()
        server.stop()
    ref = statistics.median(r for r, _ in theirs)
    dbx = statistics.median(r for r, _ in ours)
    ref_cpu = statistics.median(c for _, c in theirs)
    dbx_cpu = statistics.median(c for _, c in ours)
    rounds_text = " / ".join(f"{r:.0f}" for r, _ in ours)
    keep = ours[-1][0] / ours[0][0]
    return [
        Figure(
            "accept ratio vs bare Starlette",
            dbx / ref,
            "x",
            ">= 0.5",
            dbx / ref >= 0.5,
            f"dingbox {dbx:.0f} req/s, reference {ref:.0f} req/s; rounds {rounds_text}",
        ),
        Figure("accept round 3 / round 1", keep, "x", ">= 0.8", keep >= 0.8),
        Figure(
            "accept server CPU per request",
            dbx_cpu,
            "us",
            "-",
            True,
            f"reference {ref_cpu:.0f} us (ratio {ref_cpu / dbx_cpu:.2f})",
        ),
        Figure("drain after the load", drain, "s", "<= 30 s", drain <= 30),
    ]


def org_file(path: Path, users: int, departments: int = 100) -> Path:
    doc = {
        "corps": [
            {
                "corp_id": "bench",
                "name": "Bench",
                "departments": [
                    {"dept_id": 2 + d, "name": f"D{d}", "parent_id": 1} for d in range(departments)
                ],
                "users": [
                    {"userid": f"u{i:06d}", "name": f"U{i}", "dept_ids": [2 + i % departments]}
                    for i in range(users)
                ],
                "apps": [
                    {
                        "agent_id": 9001,
                        "name": "Bench",
                        "type": "internal",
                        "app_key": "bench-key",
                        "app_secret": "bench-secret",
                    }
                ],
            }
        ]
    }
    path.write_text(json.dumps(doc))
    return path


def reference_executemany(db: Path, users: int, round_no: int, departments: int = 100) -> float:
    """One executemany of `users` rows, in the fan-out's order (department, then userid), into a minimal
    deliveries table with one unique and one secondary index, in the same file round after round."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, task INTEGER NOT NULL,"
        " corp TEXT NOT NULL, userid TEXT NOT NULL, message INTEGER NOT NULL, state INTEGER NOT NULL,"
        " time REAL NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS deliveries_task_user ON deliveries (task, userid)")
    conn.execute("CREATE INDEX IF NOT EXISTS deliveries_inbox ON deliveries (corp, userid, id)")
    order = sorted(range(users), key=lambda i: (i % departments, i))
    base = round_no << 24
    rows = [(base | pos, round_no, "bench", f"u{i:06d}", base | pos, 0, 1.0) for pos, i in enumerate(order)]
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO deliveries (id, task, corp, userid, message, state, time) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def sequential_latencies(url: str, params: dict[str, str], count: int, stop: threading.Event) -> list[float]:
    """Sends one after another (a different user each time, so no rule forbids them), in ms."""
    http = requests.Session()
    took = []
    for n in range(count):
        if stop.is_set():
            break
        body = {
            "agent_id": 9001,
            "userid_list": f"u{n:06d}",
            "msg": {"msgtype": "text", "text": {"content": f"during {time.time()} {n}"}},
        }
        start = time.perf_counter()
        answer = http.post(url, params=params, json=body).json()
        took.append((time.perf_counter() - start) * 1000)
        assert answer["errcode"] == 0, answer
    return took


def bench_fanout(workdir: Path, users: int, rounds: int) -> list[Figure]:
    org = org_file(workdir / "org.json", users)
    references = [reference_executemany(workdir / "reference.db", users, n + 1) for n in range(rounds)]
    server = start_dingbox(workdir / "fanout.db", ["--org", str(org)])
    assert server.proc is not None
    http = requests.Session()
    tok = {"access_token": token(server.url, "bench-key", "bench-secret")}
    fanouts: list[float] = []
    results: list[float] = []
    latencies: list[float] = []
    try:
        for n in range(rounds):
            stop = threading.Event()
            with ThreadPoolExecutor(1) as pool:
                start = time.perf_counter()
                sent = http.post(
                    server.url + SEND,
                    params=tok,
                    json={
                        "agent_id": 9001,
                        "to_all_user": True,
                        "msg": {"msgtype": "text", "text": {"content": f"fan {n}"}},
                    },
                ).json()
                task_id = sent["task_id"]
                during = pool.submit(sequential_latencies, server.url + SEND, tok, 50, stop)
                while True:
                    progress = http.post(
                        server.url + PROGRESS, params=tok, json={"agent_id": 9001, "task_id": task_id}
                    ).json()["progress"]
                    if progress["status"] == 2:
                        break
                    time.sleep(0.01)
                fanouts.append(time.perf_counter() - start)
                stop.set()
                latencies += during.result()
            for _ in range(5):
                start = time.perf_counter()
                raw = http.post(
                    server.url + RESULT, params=tok, json={"agent_id": 9001, "task_id": task_id}
                ).content
                results.append(time.perf_counter() - start)  # the whole answer received
            assert len(json.loads(raw)["send_result"]["unread_user_id_list"]) == users
        rss = rss_mb(server.proc.pid)
        inbox = inbox_p95(server, http, tok)
    finally:
        server.stop()
    ref, fan = statistics.median(references), statistics.median(fanouts)
    growth = fanouts[-1] / fanouts[0]
    rounds_text = " / ".join(f"{f:.2f}" for f in fanouts)
    ref_text = " / ".join(f"{r:.2f}" for r in references)
    return [
        Figure(
            f"fan-out {users} ratio vs executemany",
            fan / ref,
            "x",
            "<= 3",
            fan / ref <= 3,
            f"dingbox {fan:.2f} s ({rounds_text}), reference {ref:.2f} s ({ref_text})",
        ),
        Figure("fan-out round 3 / round 1", growth, "x", "<= 1.3", growth <= 1.3),
        Figure(
            "getsendresult (all unread)",
            statistics.median(results) * 1000,
            "ms",
            "<= 100 ms",
            statistics.median(results) <= 0.1,
        ),
        Figure(
            "accept latency during fan-out",
            max(latencies),
            "ms",
            "max <= 100 ms",
            max(latencies) <= 100,
            f"median {statistics.median(latencies):.1f} ms over {len(latencies)} sends",
        ),
        Figure(
            f"server RSS after {users * rounds} deliv.",
            rss,
            "MB",
            "<= 300 MB",
            rss <= 300,
        ),
        inbox,
    ]


def inbox_p95(server: ServerProcess, http: requests.Session, tok: dict[str, str]) -> Figure:
    """Give one user 10,000 messages (concurrent sends of new content), then time inbox reads."""
    userid = "u000007"
    local = threading.local()  # one keep-alive session per sending thread

    def send(n: int) -> None:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        body = {
            "agent_id": 9001,
            "userid_list": userid,
            "msg": {"msgtype": "text", "text": {"content": f"inbox {n}"}},
        }
        answer = local.http.post(server.url + SEND, params=tok, json=body).json()
        assert answer["errcode"] == 0, answer

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, range(10_000)))
    assert http.post(server.url + "/api/v1/dispatch/drain", params={"timeout": 300}).status_code == 200
    base = f"{server.url}/api/v1/corps/bench/users/{userid}/messages"
    anchors = []
    page = http.get(base, params={"limit": 200}).json()
    while page["next_before"] is not None and len(anchors) < 60:
        anchors.append(page["next_before"])
        page = http.get(base, params={"limit": 200, "before": page["next_before"]}).json()
    assert len(anchors) >= 49, "the user should hold 10,000 messages"
    took = []
    rng = random.Random(7)
    for n in range(300):
        params: dict[str, Any] = {}
        if n % 3 == 1:
            params["unread"] = "true"
        if n % 3 == 2:
            params["before"] = rng.choice(anchors)
        start = time.perf_counter()
        response = http.get(base, params=params)
        took.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    p95 = statistics.quantiles(took, n=20)[-1]
    return Figure(
        "inbox p95, 10,000 messages",
        p95,
        "ms",
        "<= 50 ms",
        p95 <= 50,
        f"median {statistics.median(took):.1f} ms",
    )


def main() -> None:
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is needed (Debian: apt-get install wrk util-linux)")
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("bench: needs two cores (server and load generator are pinned apart)")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["accept", "fanout"])
    parser.add_argument("--serve-arg", action="append", default=[], help="an extra `dingbox serve` argument")
    args = parser.parse_args()
    EXTRA.extend(args.serve_arg)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "accept"):
            figures += bench_accept(work, args.seconds, args.rounds)
            print("\n".join(map(str, figures)), flush=True)
        if args.only in (None, "fanout"):
            fan = bench_fanout(work, args.users, args.rounds)
            print("\n".join(map(str, fan)), flush=True)
            figures += fan
    missed = [f.name for f in figures if not f.met]
    print(
        f"\n{len(figures) - len(missed)} of {len(figures)} targets met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )


if __name__ == "__main__":
    main()
