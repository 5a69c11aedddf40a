"""What `dingbox serve` prints: the key=value announcement once it listens, a log line per accepted task."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support import Client, ServerProcess, free_port


def test_ui_line_is_printed_once_the_socket_listens(tmp_path: Path) -> None:
    """A script that reads `ui=` and connects at once, without retrying, is served."""
    port = free_port()
    cmd = [sys.executable, "-m", "dingbox", "serve", "--db", f"sqlite:///{tmp_path / 'd.db'}"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ui="):
                break
        assert line.strip() == f"ui=http://127.0.0.1:{port}/ui/"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # no retry
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b'"status":"ok"' in answer
    finally:
        proc.terminate()
        proc.wait(15)


def test_each_accepted_task_logs_one_info_line(start_server: Callable[..., ServerProcess]) -> None:
    """One INFO line per accepted task with its id, app, corp, source and the recipients asked for;
    a refused send logs none."""
    server = start_server("--log-level", "info")
    c = Client(server.url)
    token = c.token()
    task_id = c.send(token, userid_list="alice,0356123401", dept_id_list="3")["task_id"]
    everyone = c.send(token, to_all_user="true")["task_id"]
    assert c.send(token, agent_id=999)["errcode"] == 400002
    wanted = [
        f"INFO dingbox.notifications: task {task_id} accepted: agent_id=1001 corp=dingdemo"
        " source=work_notification userids=2 depts=1 to_all=False",
        f"INFO dingbox.notifications: task {everyone} accepted: agent_id=1001 corp=dingdemo"
        " source=work_notification userids=0 depts=0 to_all=True",
    ]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in server.output if " accepted: " in line]
        if len(lines) >= 2:
            break
        time.sleep(0.05)
    assert [line.strip().split(" ", 2)[2] for line in lines] == wanted
