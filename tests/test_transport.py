"""Connections: clients that hang up, clients that are slow, and too many clients.

Choices where DESIGN is silent, checked below:
- a client leaving before its body arrived is routine: one DEBUG line, no traceback, the work dropped;
- a request's headers must arrive within --header-timeout of the connection (or of the previous
  response), its body within --body-timeout of the headers, else 408 and the connection closes;
- past --max-connections open connections, a new one is answered 503 and closed at once.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest
import requests

from support import MESSAGES, Client, ServerProcess

pytestmark = pytest.mark.store_independent  # connections and deadlines: the store plays no part

StartServer = Callable[..., ServerProcess]


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and its content-length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def partial_request(server: ServerProcess, method: str, path: str, headers: str = "") -> socket.socket:
    """A request whose headers promise 1000 bytes of body, of which only a few are sent."""
    sock = connect(server)
    sock.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}"
        'Content-Length: 1000\r\n\r\n{"agent_id": 1001, "msg": '.encode()
    )
    return sock


def test_client_hanging_up_mid_body_logs_no_traceback(start_server: StartServer) -> None:
    """Partial bodies then a hang-up, on every surface that reads a body: no traceback, no error, no work."""
    server = start_server("--log-level", "info")
    client = Client(server.url)
    token = client.token()
    targets = [
        ("POST", f"{MESSAGES}asyncsend_v2?access_token={token}", ""),
        ("POST", "/v1.0/robot/oToMessages/batchSend", f"x-acs-dingtalk-access-token: {token}\r\n"),
        ("POST", "/router/rest", ""),
        ("PUT", "/api/v1/org", ""),
    ]
    for _ in range(5):
        for method, path, headers in targets:
            sock = partial_request(server, method, path, headers)
            time.sleep(0.05)  # the handler is waiting for the rest of the body
            sock.close()
    time.sleep(0.5)
    assert client.api("GET", "/health").json()["pending_tasks"] == 0  # no send was accepted
    assert [c["corp_id"] for c in client.api("GET", "/corps").json()["corps"]] == ["dingdemo"]
    server.stop()  # every line it logged is in its output now
    output = "".join(server.output)
    assert "Traceback" not in output
    assert " ERROR " not in output and "ERROR:" not in output


def test_slow_headers_get_408_and_others_are_served(start_server: StartServer) -> None:
    """A client trickling its headers, or sending nothing, is answered 408 and dropped at the deadline."""
    server = start_server("--header-timeout", "2")  # deadlines are swept every quarter second
    silent = connect(server)
    loris = connect(server)
    started = time.monotonic()
    loris.sendall(b"GET /api/v1/corps HTTP/1.1\r\n")
    for _ in range(4):
        time.sleep(0.2)
        loris.sendall(b"X-Slow: 1\r\n")
        assert Client(server.url).api("GET", "/health").status_code == 200  # others are served meanwhile
    answer = read_all(loris)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 1.9 <= elapsed < 4, elapsed
    assert read_all(silent).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 4


def test_slow_body_gets_408_and_its_work_is_dropped(start_server: StartServer) -> None:
    """Headers on time but a body that never completes: 408 at --body-timeout, the org untouched."""
    server = start_server("--body-timeout", "1", "--log-level", "info")
    started = time.monotonic()
    sock = partial_request(server, "PUT", "/api/v1/org")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.9 <= time.monotonic() - started < 3
    client = Client(server.url)
    assert [c["corp_id"] for c in client.api("GET", "/corps").json()["corps"]] == ["dingdemo"]
    server.stop()  # every line it logged is in its output now
    assert "Traceback" not in "".join(server.output)


def test_whole_requests_under_the_deadlines_pass(start_server: StartServer) -> None:
    """A request sent in pieces that all arrive in time is served normally, twice on one connection."""
    server = start_server("--header-timeout", "2", "--body-timeout", "2")
    sock = connect(server)
    body = b'{"seconds": 5}'
    for _ in range(2):
        sock.sendall(b"POST /api/v1/clock/advance HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.3)
        sock.sendall(b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        time.sleep(0.3)
        sock.sendall(body)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    sock.close()


def test_idle_keep_alive_connection_closes_after_keep_alive_timeout(start_server: StartServer) -> None:
    """--keep-alive-timeout 1: an idle connection after a response is closed in about a second."""
    server = start_server("--keep-alive-timeout", "1")
    sock = connect(server)
    sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    started = time.monotonic()
    assert read_all(sock) == b""
    assert time.monotonic() - started < 3


def test_connections_past_the_cap_get_503(start_server: StartServer) -> None:
    """--max-connections: one connection more is answered 503 and closed; freed places serve again."""
    server = start_server("--max-connections", "3")
    held = [connect(server) for _ in range(3)]
    time.sleep(0.2)
    extra = connect(server)
    assert read_all(extra).startswith(b"HTTP/1.1 503 ")
    for sock in held:
        sock.close()
    time.sleep(0.2)
    assert Client(server.url).api("GET", "/health").status_code == 200


def test_many_silent_clients_release_their_descriptors(start_server: StartServer) -> None:
    """Fifty clients that connect and send nothing hold the server's descriptors for --header-timeout,
    not for as long as they like."""
    server = start_server("--header-timeout", "3")
    assert server.proc is not None
    fds = f"/proc/{server.proc.pid}/fd"
    # served, and its connection closed: a kept-alive one would be counted now and gone later
    assert requests.get(server.url + "/api/v1/health", headers={"Connection": "close"}).ok
    time.sleep(0.2)
    before = len(os.listdir(fds))
    silent = [connect(server) for _ in range(50)]
    deadline = time.monotonic() + 2.5  # a loaded machine accepts them a little late
    while len(os.listdir(fds)) < before + 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir(fds)) >= before + 50
    deadline = time.monotonic() + 8
    while len(os.listdir(fds)) > before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(os.listdir(fds)) <= before + 2
    assert all(read_all(sock).startswith(b"HTTP/1.1 408 ") for sock in silent)
    for sock in silent:
        sock.close()
