"""The accept unit of work (`units.accept_tasks`) on a real SQLite store, where HTTP cannot reach: a
task whose decision raises is still accepted, undone alone and left to the dispatcher loops."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from dingbox.dispatch import units
from dingbox.domain.limits import AppLimits
from dingbox.services.org import demo_document, load_document_tx
from dingbox.store import open_store
from dingbox.store.base import Tx
from dingbox.store.task_sql import NewTask, PreparedTask

USERIDS_COLUMN = 8  # of PreparedTask.columns


def prepared(content: str, userids_json: str | None = None) -> PreparedTask:
    body = f'{{"msgtype":"text","text":{{"content":"{content}"}}}}'.encode()
    task = NewTask(
        source="work_notification",
        corp_id="dingdemo",
        agent_id=1001,
        app_type="internal",
        request={},
        msgtype="text",
        msg=body,
        content_hash=content.encode().ljust(32, b"."),
        userids=["alice"],
        dept_ids=[],
        to_all_user=False,
        warnings=[],
        not_before=0.0,
    )
    ready = PreparedTask.of(task)
    if userids_json is not None:  # what no accept writes today: the decision cannot read it
        columns = list(ready.columns)
        columns[USERIDS_COLUMN] = userids_json
        ready = dataclasses.replace(ready, columns=tuple(columns))
    return ready


def status_and_deliveries(tx: Tx, task_id: int) -> tuple[int, int]:
    row = tx.one(
        "SELECT t.status, (SELECT COUNT(*) FROM deliveries d WHERE d.task_seq = t.seq) FROM tasks t"
        " WHERE t.task_id = ?",
        (task_id,),
    )
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_decision_that_raises_is_undone_alone_and_the_tasks_wait_for_the_loops(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'accept.db'}")
    try:
        store.write_sync(load_document_tx, demo_document())
        terms = units.DecideTerms(AppLimits(None, None, None, None, None), None)  # unlimited
        good = store.write_sync(units.accept_tasks, [(prepared("fine"), time.time, terms)])
        bad = store.write_sync(
            units.accept_tasks,
            [(prepared("broken", '["alice", '), time.time, terms), (prepared("next"), time.time, terms)],
        )
        ((_, good_id, good_written),) = good
        (_, broken_id, broken_written), (_, next_id, next_written) = bad
        assert good_written is not None and good_written.counts == {"delivered": 1}
        assert broken_written is None and next_written is None  # the group's decision was undone
        assert store.read_sync(status_and_deliveries, good_id) == (2, 1)
        assert store.read_sync(status_and_deliveries, broken_id) == (0, 0)  # accepted, waiting
        assert store.read_sync(status_and_deliveries, next_id) == (0, 0)
    finally:
        store.close()
