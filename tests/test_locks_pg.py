"""Row locks on PostgreSQL: units of work that lock a task's row and its deliveries' take them in one
order (the task first), so a recall never deadlocks against people reading its messages.

Runs when DINGBOX_TEST_POSTGRES_URL names a PostgreSQL database the tests may create databases
beside; in CI it must be set.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests

from support import MESSAGES, Client, ServerProcess, text

USERS = 300
AGENT = 7001


def deadlocks(url: str) -> int:
    """Deadlocks PostgreSQL has detected in this database (a server process counts its own when it
    ends, at the latest)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_recall_while_its_messages_are_read_never_deadlocks(pg_url: str) -> None:
    """Eight readers mark a 300-recipient task's messages read while its app recalls it: every recall
    succeeds at once and PostgreSQL detects no deadlock. Marking read used to lock the delivery and
    then the task, a recall the task and then the deliveries: in this test 53 deadlocks in five
    rounds, and two recalls failed with `-1 系统繁忙` once the store's retries ran out."""
    server = ServerProcess(pg_url, ["--limits", "unlimited"]).start()
    try:
        c = Client(server.url)
        users = [{"userid": f"u{i:03d}", "name": f"U{i}", "dept_ids": [1]} for i in range(USERS)]
        app = {"agent_id": AGENT, "name": "A", "type": "internal", "app_key": "k7", "app_secret": "s7"}
        assert c.load_org({"corps": [{"corp_id": "locks", "name": "L", "users": users, "apps": [app]}]}).ok
        token = c.token("k7", "s7")
        before = deadlocks(pg_url)
        for round_no in range(5):
            task_id = c.send(token, agent_id=AGENT, msg=text(f"locks {round_no}"), to_all_user="true")[
                "task_id"
            ]
            ids = [r["message_id"] for r in c.task(task_id, wait=60)["recipients"]]
            assert len(ids) == USERS

            def read(message_id: int) -> int:
                return requests.post(
                    f"{server.url}/api/v1/messages/{message_id}/read", timeout=60
                ).status_code

            with ThreadPoolExecutor(max_workers=8) as pool:
                reads = [pool.submit(read, message_id) for message_id in ids]
                time.sleep(0.02)  # let the readers get going
                recall = c.oapi(MESSAGES + "recall", {"agent_id": AGENT, "msg_task_id": task_id}, token)
                codes = {future.result() for future in reads}
            assert recall["errcode"] == 0, recall
            assert codes <= {200, 409}, codes  # read before the recall, or refused as recalled
    finally:
        server.stop()  # its connections end, and with them PostgreSQL counts their deadlocks
    assert deadlocks(pg_url) == before
