"""A store that cannot write is answered, not hung: DingTalk's system error, a degraded health check,
recovery once space returns, and SIGTERM honoured throughout.

The disk is "filled" with a file-size limit on the running server (RLIMIT_FSIZE through prlimit): every
write past the first byte of a file then fails with EFBIG, as on a full disk.
"""

from __future__ import annotations

import resource
import signal
import time
from typing import Any

import pytest
import requests

from support import Client, ServerProcess, text

SOFT_UNLIMITED = resource.RLIM_INFINITY
pytestmark = pytest.mark.sqlite_only  # a file-size limit fails a store that writes files itself


def limit_file_size(server: ServerProcess, size: int) -> None:
    assert server.proc is not None
    _, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (size, hard))


def timed(call: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def test_a_full_disk_is_answered_reported_and_survived(start_server: Any) -> None:
    server: ServerProcess = start_server()
    c = Client(server.url)
    token = c.token()
    assert c.sent(token, userid_list="alice", msg=text("before"))

    limit_file_size(server, 1)
    answers = []
    for n in range(3):  # the first group may still fit in pages already written; later ones cannot
        answer, took = timed(lambda n=n: c.send(token, userid_list="alice", msg=text(f"full {n}")))
        answers.append(answer)
        assert took < 10
    token_v1, took_v1 = timed(
        lambda: c.http.post(
            f"{c.base}/v1.0/oauth2/accessToken", json={"appKey": "demo-key", "appSecret": "demo-secret"}
        )
    )
    health = c.api("GET", "/health")

    assert {"errcode": -1, "errmsg": "系统繁忙"}.items() <= answers[-1].items()
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert "cannot write" in health.json()["reason"]
    # v1.0 renders the same failure as its own system error, when the call has to write
    if token_v1.status_code != 200:
        assert (token_v1.status_code, token_v1.json()["code"]) == (503, "system.error")
    assert took_v1 < 10

    limit_file_size(server, SOFT_UNLIMITED)
    deadline = time.monotonic() + 10
    while c.api("GET", "/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    recovered = c.send(token, userid_list="alice", msg=text("after"))
    assert recovered["errcode"] == 0, recovered
    assert c.task(recovered["task_id"], wait=10)["counts"] == {"delivered": 1}
    assert c.api("GET", "/health").json()["status"] == "ok"
    contents = [m["content"]["content"] for m in c.inbox("alice")]
    assert contents[0] == "after" and "before" in contents
    refused = {f"full {n}" for n, answer in enumerate(answers) if answer["errcode"] != 0}
    accepted = {f"full {n}" for n, answer in enumerate(answers) if answer["errcode"] == 0}
    assert not refused & set(contents)  # a refused send delivers nothing, ever
    assert accepted <= set(contents)  # one the full disk still took is delivered, not lost

    limit_file_size(server, 1)  # fail again, then stop: SIGTERM is honoured within the graceful timeout
    try:
        c.send(token, userid_list="alice", msg=text("full again"))
    except requests.RequestException:
        pass
    assert server.proc is not None
    started = time.monotonic()
    code = server.stop(signal.SIGTERM, timeout=20)
    assert code == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in "".join(server.output)
