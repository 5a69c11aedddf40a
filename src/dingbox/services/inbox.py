"""What recipients got: inboxes, single messages, reading them, and task details (the /api/v1 views)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from dingbox.clock import iso
from dingbox.domain.identifiers import names_nothing
from dingbox.domain.pipeline import OUTCOME_NAMES, Outcome
from dingbox.runtime import Runtime
from dingbox.store import browse_sql, result_sql, task_sql
from dingbox.store.base import Row
from dingbox.store.result_sql import MessageRow
from dingbox.store.task_sql import POS_BITS, TaskRow

MAX_PAGE = 200
# A recipient cursor is a position inside one task's block of delivery ids (POS_BITS bits): past the
# block it could only overflow the id arithmetic in SQL.
MAX_CURSOR = (1 << POS_BITS) - 1


class MessageRecalled(Exception):
    """Reading a recalled message: DingTalk shows it as withdrawn, so it cannot become read."""


class AnchorNotFound(LookupError):
    """A `before` that names no message or task: paging from it would silently restart at the newest."""


class UnknownUser(LookupError):
    """An inbox of a userid the corp does not have and that holds no messages: most likely a typo,
    which must fail rather than read as an empty inbox."""


def message_json(row: MessageRow) -> dict[str, Any]:
    msg = orjson.loads(row.msg)
    content = msg.get(row.msgtype, msg)
    status_bar = orjson.loads(row.status_bar) if row.status_bar else None
    if status_bar is None and row.msgtype == "oa" and isinstance(content, dict):
        status_bar = content.get("status_bar")
    return {
        "id": row.id,
        "seq": row.seq,
        "corp_id": row.corp_id,
        "userid": row.userid,
        "open_conversation_id": row.open_conversation_id,
        "source": row.source,
        "agent_id": row.agent_id,
        "robot_code": row.robot_code,
        "task_id": row.task_id,
        "process_query_key": row.process_query_key,
        "template_id": row.template_id,
        "template_data": orjson.loads(row.template_data) if row.template_data else None,
        "msgtype": row.msgtype,
        "content": content,
        "status_bar": status_bar,
        "created_at": iso(row.created_at),
        "read": row.read_at is not None,
        "read_at": iso(row.read_at) if row.read_at is not None else None,
        "recalled": bool(row.recalled),
    }


def recipient_outcome(outcome: int, read: bool, recalled: bool) -> str:
    if outcome == Outcome.DELIVERED:
        return "recalled" if recalled else "read" if read else "delivered"
    return OUTCOME_NAMES[Outcome(outcome)]


def outcome_totals(outcome_counts: list[Row]) -> dict[str, int]:
    """Recipients by outcome name (delivered, read, recalled, …) from result_sql.outcome_counts' groups."""
    counts: dict[str, int] = {}
    for outcome, read, recalled, n in outcome_counts:
        name = recipient_outcome(outcome, bool(read), bool(recalled))
        counts[name] = counts.get(name, 0) + n
    return counts


def task_json(task: TaskRow, outcome_counts: list[Row]) -> dict[str, Any]:
    """The Task object without its recipients; `outcome_counts` as result_sql.outcome_counts gives them."""
    counts = outcome_totals(outcome_counts)
    return {
        "task_id": task.task_id,
        "corp_id": task.corp_id,
        "agent_id": task.agent_id,
        "source": task.source,
        "status": task.status,
        "progress_in_percent": task.progress_in_percent,
        "accepted_at": iso(task.accepted_at),
        "finished_at": iso(task.finished_at) if task.finished_at is not None else None,
        "request": orjson.loads(task.request),
        "counts": counts,
        "warnings": orjson.loads(task.warnings),
        "invalid_dept_ids": orjson.loads(task.invalid_dept_ids),
    }


class InboxService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def messages(
        self, corp_id: str, userid: str, *, limit: int, before: int | None, source: str | None, unread: bool
    ) -> dict[str, Any]:
        store = self.rt.store
        if names_nothing(corp_id) or names_nothing(userid):
            raise UnknownUser(userid)
        anchor = None
        if before is not None:
            anchor = await store.read(result_sql.message_by_id, before)
            if anchor is None:
                raise AnchorNotFound(before)
        rows = await store.read(
            result_sql.inbox_page, corp_id, userid, limit=limit, before=anchor, source=source, unread=unread
        )
        if not rows and not await store.read(browse_sql.inbox_known, corp_id, userid):
            raise UnknownUser(userid)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "messages": [message_json(r) for r in rows],
            "next_before": rows[-1].id if more and rows else None,
        }

    async def message(self, message_id: int) -> dict[str, Any] | None:
        row = await self.rt.store.read(result_sql.message_by_id, message_id)
        return None if row is None else message_json(row)

    async def mark_read(self, message_id: int) -> dict[str, Any] | None:
        row = await self.rt.store.read(result_sql.message_by_id, message_id)
        if row is None:
            return None
        if row.recalled:
            raise MessageRecalled()
        if row.read_at is None:
            row, changed = await self.rt.store.write(result_sql.mark_read, message_id, self.rt.clock.now())
            if row is None:
                return None
            if row.recalled:
                raise MessageRecalled()
            if changed:
                self.rt.events.publish(
                    "message.read", row.corp_id, message_id=row.id, task_id=row.task_id, userid=row.userid
                )
        return message_json(row)

    async def task(
        self,
        task_id: int,
        *,
        wait: float,
        cursor: int,
        limit: int,
        outcome: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any] | None:
        """The task; with `wait`, once it has finished or `wait` seconds have passed, woken by the bus.
        Its recipients page from `cursor`, only those with `outcome` and `reason` when given."""
        store = self.rt.store
        deadline = time.monotonic() + wait
        read = (result_sql.task_detail, task_id, cursor, limit + 1, outcome, reason)
        with self.rt.events.subscribe(["task.finished"], lambda e: e.data["task_id"] == task_id) as sub:
            detail = await store.read(*read)
            while detail is not None and detail[0].status != 2 and (left := deadline - time.monotonic()) > 0:
                await sub.get(left)  # an overflow or a timeout also lands here: re-read either way
                detail = await store.read(*read)
        if detail is None:
            return None
        return self._task_json(*detail, limit)

    def _task_json(self, task: TaskRow, counts: list[Row], page: list[Row], limit: int) -> dict[str, Any]:
        body = task_json(task, counts)
        more = len(page) > limit
        page = page[:limit]
        body["recipients"] = [
            {
                "userid": userid,
                "outcome": recipient_outcome(outcome, read_at is not None, bool(recalled)),
                "reason": reason,
                "code": code,
                "message_id": message_id if outcome == Outcome.DELIVERED else None,
            }
            for _pos, userid, outcome, reason, code, message_id, read_at, recalled in page
        ]
        body["next_cursor"] = page[-1][0] + 1 if more and page else None
        return body

    async def drain(self, timeout: float) -> bool:
        """True once no task is pending; False after `timeout` seconds. Re-counts when tasks finish."""
        deadline = time.monotonic() + timeout
        with self.rt.events.subscribe(["task.finished"]) as sub:
            while True:
                count, _ = await self.rt.store.read(task_sql.pending_stats)
                if count == 0:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                await sub.get(left)
                while not sub.queue.empty():  # a bulk dispatch finishes many tasks at once: count once
                    sub.queue.get_nowait()
