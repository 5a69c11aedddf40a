"""dingbox benchmarks, each printed as a ratio against a reference measured in the same run.

1. accept: asyncsend_v2 requests/s through dingbox vs a bare Starlette app on the same uvicorn
   (wrk, keep-alive, fixed connections; dispatchers off so the accept path is measured alone).
   Target: ratio ≥ 0.5.
2. fan-out: a to_all_user send to 100,000 users (limits `unlimited`) from acceptance to status 2
   vs one `executemany` of as many rows into the same deliveries table. Target: ≤ 2×.
3. getsendresult on that 100,000-recipient task: median latency. Target: ≤ 100 ms.

Usage: python bench/run.py [--users N] [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import ServerProcess, free_port  # noqa: E402

SEND = "/topapi/message/corpconversation/asyncsend_v2"
LUA = """
wrk.method = "POST"
wrk.body = '{"agent_id":1001,"userid_list":"alice","msg":{"msgtype":"text","text":{"content":"benchmark"}}}'
wrk.headers["Content-Type"] = "application/json"
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used: steadier than req/s on a host that steals CPU."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, pid: int | None = None, connections: int = 32) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - before if pid else 0.0
    os.unlink(script.name)
    rps = requests_done = None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "requests in" in line:
            requests_done = int(line.split()[0])
    if rps is None or not requests_done:
        raise RuntimeError("wrk printed no Requests/sec:\n" + out)
    return rps, cpu / requests_done * 1e6


def start_reference() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "reference_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=Path(__file__).parent,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.post(url + SEND, data=b"{}", timeout=1)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("reference app did not start")


def bench_accept(workdir: Path, seconds: int, rounds: int) -> dict[str, float]:
    server = ServerProcess(workdir / "accept.db", ["--dispatchers", "0", "--limits", "unlimited"]).start()
    token = requests.get(
        server.url + "/gettoken", params={"appkey": "demo-key", "appsecret": "demo-secret"}
    ).json()
    dingbox_url = f"{server.url}{SEND}?access_token={token['access_token']}"
    check = requests.post(
        dingbox_url,
        json={"agent_id": 1001, "userid_list": "alice", "msg": {"msgtype": "text", "text": {"content": "x"}}},
    ).json()
    assert check["errcode"] == 0, check
    reference, ref_url = start_reference()
    assert server.proc is not None
    ours, theirs = [], []
    try:
        wrk(ref_url + SEND, 1)  # warm both up
        wrk(dingbox_url, 1)
        for _ in range(rounds):
            theirs.append(wrk(ref_url + SEND, seconds, reference.pid))
            ours.append(wrk(dingbox_url, seconds, server.proc.pid))
    finally:
        reference.send_signal(signal.SIGINT)
        reference.wait()
        server.stop()
    ref, dbx = statistics.median(r for r, _ in theirs), statistics.median(r for r, _ in ours)
    ref_cpu, dbx_cpu = statistics.median(c for _, c in theirs), statistics.median(c for _, c in ours)
    return {
        "reference_rps": ref,
        "dingbox_rps": dbx,
        "ratio": dbx / ref,
        "reference_cpu_us": ref_cpu,
        "dingbox_cpu_us": dbx_cpu,
    }


def org_file(path: Path, users: int) -> Path:
    doc = {
        "corps": [
            {
                "corp_id": "bench",
                "name": "Bench",
                "departments": [{"dept_id": 2 + d, "name": f"D{d}", "parent_id": 1} for d in range(10)],
                "users": [
                    {"userid": f"u{i:06d}", "name": f"U{i}", "dept_ids": [2 + i % 10]} for i in range(users)
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


def reference_executemany(db: Path, users: int) -> float:
    """One executemany of `users` rows into a deliveries table created by dingbox's own migrations.

    The rows are the ones the fan-out writes, in the order it writes them (department, then userid),
    since index insertion order matters as much as the row count."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    from dingbox.store.migrate import migrate_sqlite

    migrate_sqlite(conn)
    order = sorted(range(users), key=lambda i: (i % 10, i))  # org_file puts user i in department 2 + i % 10
    rows = [
        (1, pos, "bench", f"u{i:06d}", 9001, 0, None, None, 20000, b"0123456789abcdef", 1.0, 0)
        for pos, i in enumerate(order)
    ]
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO deliveries (task_seq, pos, corp_id, userid, agent_id, outcome, reason, code, day,"
        " content_hash, created_at, recalled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def bench_fanout(workdir: Path, users: int, rounds: int) -> dict[str, float]:
    org = org_file(workdir / "org.json", users)
    references, fanouts, results = [], [], []
    for n in range(rounds):
        references.append(reference_executemany(workdir / f"ref{n}.db", users))
        server = ServerProcess(workdir / f"fan{n}.db", ["--limits", "unlimited", "--org", str(org)]).start()
        try:
            s = requests.Session()
            token = s.get(
                server.url + "/gettoken", params={"appkey": "bench-key", "appsecret": "bench-secret"}
            ).json()
            tok = token["access_token"]
            sent = s.post(
                f"{server.url}{SEND}",
                params={"access_token": tok},
                json={
                    "agent_id": 9001,
                    "to_all_user": True,
                    "msg": {"msgtype": "text", "text": {"content": f"fan {n}"}},
                },
            )
            task_id = sent.json()["task_id"]
            task = s.get(f"{server.url}/api/v1/tasks/{task_id}", params={"wait": 300, "limit": 1}).json()
            assert task["status"] == 2 and task["counts"].get("delivered") == users, task["counts"]
            with sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True) as conn:
                accepted, finished = conn.execute(
                    "SELECT accepted_at, finished_at FROM tasks WHERE task_id = ?", (task_id,)
                ).fetchone()
            # acceptance to the last batch's commit, as the store recorded them: no client polling in it
            fanouts.append(finished - accepted)
            for _ in range(5):
                start = time.perf_counter()
                raw = s.post(
                    server.url + "/topapi/message/corpconversation/getsendresult",
                    params={"access_token": tok},
                    json={"agent_id": 9001, "task_id": task_id},
                ).content
                # the whole answer received; parsing it is the client's work
                results.append(time.perf_counter() - start)
                assert len(json.loads(raw)["send_result"]["unread_user_id_list"]) == users
        finally:
            server.stop()
    ref, fan = statistics.median(references), statistics.median(fanouts)
    return {
        "reference_executemany_s": ref,
        "fanout_s": fan,
        "ratio": fan / ref,
        "getsendresult_median_ms": statistics.median(results) * 1000,
    }


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench: the accept benchmark drives load with wrk (Debian: apt-get install wrk)")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["accept", "fanout"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "accept"):
            a = bench_accept(work, args.seconds, args.rounds)
            print(
                f"accept    reference {a['reference_rps']:.0f} req/s   dingbox {a['dingbox_rps']:.0f} req/s"
                f"   ratio {a['ratio']:.2f} (target >= 0.5)"
            )
            print(
                f"          server CPU per request: reference {a['reference_cpu_us']:.0f} us"
                f"   dingbox {a['dingbox_cpu_us']:.0f} us"
                f"   ratio {a['reference_cpu_us'] / a['dingbox_cpu_us']:.2f}"
            )
        if args.only in (None, "fanout"):
            f = bench_fanout(work, args.users, args.rounds)
            print(
                f"fan-out   executemany {f['reference_executemany_s']:.3f} s   dingbox {f['fanout_s']:.3f} s"
                f"   ratio {f['ratio']:.2f}x (target <= 2x) for {args.users} users"
            )
            print(f"result    getsendresult median {f['getsendresult_median_ms']:.1f} ms (target <= 100 ms)")


if __name__ == "__main__":
    main()
