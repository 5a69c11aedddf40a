"""Fan-out: to_all_user to 100,000 users in 100 departments, timed as a client sees it (send, then
getsendprogress until status 2), 3 rounds into one store; getsendresult of each task; sends one
after another while each fan-out runs; the server's RSS; inbox pages of a user with 10,000 messages."""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from harness import PROGRESS, RESULT, SEND, Figure, ServerProcess, drain, rss_mb, token
from references import DEPARTMENTS


@dataclass
class Reference:
    """The reference's timings (seconds per round), what it is, and the target ratio."""

    name: str
    seconds: list[float]
    target: float


def org_file(path: Path, users: int) -> Path:
    doc = {
        "corps": [
            {
                "corp_id": "bench",
                "name": "Bench",
                "departments": [
                    {"dept_id": 2 + d, "name": f"D{d}", "parent_id": 1} for d in range(DEPARTMENTS)
                ],
                "users": [
                    {"userid": f"u{i:06d}", "name": f"U{i}", "dept_ids": [2 + i % DEPARTMENTS]}
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


def fanout_figures(
    label: str, server: ServerProcess, users: int, rounds: int, reference: Reference, inbox: bool = True
) -> list[Figure]:
    """The fan-out figures of a server started on the bench org (`org_file`)."""
    assert server.proc is not None
    http = requests.Session()
    tok = {"access_token": token(server.url, "bench-key", "bench-secret")}
    fanouts: list[float] = []
    results: list[float] = []
    latencies: list[float] = []
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
            body = {"agent_id": 9001, "task_id": task_id}
            raw = http.post(server.url + RESULT, params=tok, json=body).content
            results.append(time.perf_counter() - start)  # the whole answer received
        assert len(json.loads(raw)["send_result"]["unread_user_id_list"]) == users
    rss = rss_mb(server.proc.pid)
    ref, fan = statistics.median(reference.seconds), statistics.median(fanouts)
    growth = fanouts[-1] / fanouts[0]
    rounds_text = " / ".join(f"{f:.2f}" for f in fanouts)
    ref_text = " / ".join(f"{r:.2f}" for r in reference.seconds)
    figures = [
        Figure(
            f"{label}fan-out {users} ratio vs {reference.name}",
            fan / ref,
            "x",
            f"<= {reference.target:g}",
            fan / ref <= reference.target,
            f"dingbox {fan:.2f} s ({rounds_text}), reference {ref:.2f} s ({ref_text})",
        ),
        Figure(f"{label}fan-out round 3 / round 1", growth, "x", "<= 1.3", growth <= 1.3),
        Figure(
            f"{label}getsendresult (all unread)",
            statistics.median(results) * 1000,
            "ms",
            "<= 100 ms",
            statistics.median(results) <= 0.1,
        ),
        Figure(
            f"{label}accept latency during fan-out",
            max(latencies),
            "ms",
            "max <= 100 ms",
            max(latencies) <= 100,
            f"median {statistics.median(latencies):.1f} ms over {len(latencies)} sends",
        ),
        Figure(f"{label}server RSS after {users * rounds} deliv.", rss, "MB", "<= 300 MB", rss <= 300),
    ]
    if inbox:
        figures.append(inbox_p95(label, server, http, tok))
    return figures


def inbox_p95(label: str, server: ServerProcess, http: requests.Session, tok: dict[str, str]) -> Figure:
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
    drain(server, 300)
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
        f"{label}inbox p95, 10,000 messages",
        p95,
        "ms",
        "<= 50 ms",
        p95 <= 50,
        f"median {statistics.median(took):.1f} ms",
    )
