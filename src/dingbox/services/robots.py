"""Enterprise robots, one-to-one (spec §5.1–§5.3): batchSend, readStatus, batchRecall.

A batchSend is decided while its caller waits (the answer lists who was not reached), under the
same recipient rules as a work notification: the robot's app must be the token's, and its
visibility and its users' activation decide who receives. Messages land in inboxes as
`source: "robot"` with `msgtype` the msgKey and `content` the parsed msgParam.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dingbox import errors, ids
from dingbox.clock import calendar_minute
from dingbox.domain import robot_messages
from dingbox.domain.directory import AppInfo, Principal
from dingbox.domain.identifiers import names_nothing
from dingbox.domain.messages import canonical_json
from dingbox.runtime import Runtime
from dingbox.store import dispatch_sql, robot_sql
from dingbox.store.base import Tx
from dingbox.store.task_sql import NewTask, PreparedTask, TaskRow

RECALL_KEYS_MAX = 20  # spec §5.3


@dataclass(frozen=True)
class BatchSendRequest:
    robot_code: str | None
    user_ids: list[str] | None
    msg_key: str | None
    msg_param: str | None  # JSON text, as DingTalk takes it
    received: dict[str, Any]  # the request as received, kept on the task for /api/v1/tasks only


@dataclass(frozen=True)
class BatchSendResult:
    process_query_key: str
    invalid_user_ids: list[str]
    flow_controlled_user_ids: list[str]


@dataclass(frozen=True)
class ReadState:
    userid: str
    name: str
    read_at: float | None


@dataclass(frozen=True)
class ReadStatusResult:
    recalled: bool
    recipients: list[ReadState]


@dataclass(frozen=True)
class RecallResult:
    recalled: list[str]
    failed: dict[str, str]  # processQueryKey -> reason


class RobotService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def _owned_robot(self, principal: Principal, robot_code: str) -> AppInfo:
        app = self.rt.directory.owned_robot(principal, robot_code)
        if app is None:
            raise errors.RobotNotFound()
        return app

    async def batch_send(self, principal: Principal, req: BatchSendRequest) -> BatchSendResult:
        """Checks in the row order of spec §5.1; then one transaction decides and writes every recipient."""
        if req.robot_code is None or not req.robot_code.strip():
            raise errors.RobotCodeEmpty()
        robot_code = req.robot_code
        app = self._owned_robot(principal, robot_code)
        named = robot_messages.user_ids(req.user_ids or [])
        # a userid holding a NUL names no user: reported as unknown, as DingTalk reports any unknown
        # userid, but never written (no store row can carry it on PostgreSQL)
        userids = [u for u in named if not names_nothing(u)]
        key = robot_messages.msg_key(req.msg_key)
        params = robot_messages.parse_msg_param(key, req.msg_param)
        process_query_key = ids.process_query_key()
        task = NewTask(
            source="robot",
            corp_id=app.corp_id,
            agent_id=app.agent_id,
            app_type=app.type,
            request=req.received,
            msgtype=key.name,
            msg=canonical_json({key.name: params}),
            content_hash=None,  # no same-content rule for robots (DESIGN §3)
            userids=userids,
            dept_ids=[],
            to_all_user=False,
            warnings=[],
            not_before=time.time(),
            robot_code=robot_code,
            process_query_key=process_query_key,
        )
        limit = self.rt.settings.robot_minute_limit or None
        batch = robot_sql.RobotBatch(
            PreparedTask.of(task),
            app.corp_id,
            app.agent_id,
            robot_code,
            userids,
            await self.rt.visible_users(app),
        )
        sent = await self.rt.store.write(_send_unit, batch, limit, self.rt.clock.now)
        events = self.rt.events
        events.publish(
            "robot.sent",
            app.corp_id,
            task_id=sent.task_id,
            robot_code=robot_code,
            process_query_key=process_query_key,
            agent_id=app.agent_id,
        )
        if sent.delivered:
            events.publish(
                "message.delivered",
                app.corp_id,
                task_id=sent.task_id,
                source="robot",
                agent_id=app.agent_id,
                messages=[list(m) for m in sent.delivered],
            )
        invalid, flow_controlled = robot_messages.not_reached(sent.decisions)
        if len(userids) < len(named):
            unknown = set(invalid)
            invalid = [u for u in named if u in unknown or names_nothing(u)]
        return BatchSendResult(process_query_key, invalid, flow_controlled)

    def _own_task(self, task: TaskRow | None, principal: Principal, robot_code: str) -> bool:
        return task is not None and task.robot_code == robot_code and task.corp_id == principal.corp_id

    async def read_status(
        self, principal: Principal, robot_code: str | None, process_query_key: str | None
    ) -> ReadStatusResult:
        if not robot_code:
            raise errors.RobotCodeMissing()
        if not process_query_key:
            raise errors.ProcessQueryKeyMissing()
        self._owned_robot(principal, robot_code)
        task = None
        if not names_nothing(process_query_key):
            task = await self.rt.store.read(robot_sql.task_by_query_key, process_query_key)
        if task is None or not self._own_task(task, principal, robot_code):
            raise errors.ProcessQueryKeyInvalid()
        if self.rt.clock.now() - task.accepted_at > self.rt.limits.result_window:
            raise errors.ProcessQueryKeyExpired()
        states = await self.rt.store.read(robot_sql.read_states, task.seq)
        return ReadStatusResult(task.recalled_at is not None, [ReadState(*s) for s in states])

    async def batch_recall(
        self, principal: Principal, robot_code: str | None, keys: list[str] | None
    ) -> RecallResult:
        """Recalls every message of each key; unknown and expired keys are reported, not raised."""
        if robot_code is None or not robot_code.strip():
            raise errors.RobotCodeEmpty()
        wanted = list(dict.fromkeys(k for k in keys or () if k))
        if not wanted:
            raise errors.ProcessQueryKeyMissing()
        if len(wanted) > RECALL_KEYS_MAX:
            raise errors.InvalidParameter("processQueryKeys", f"最多{RECALL_KEYS_MAX}个")
        self._owned_robot(principal, robot_code)
        nameable = [k for k in wanted if not names_nothing(k)]  # a key holding a NUL names no send
        found = await self.rt.store.read(robot_sql.tasks_by_query_keys, nameable) if nameable else {}
        now = self.rt.clock.now()
        failed: dict[str, str] = {}
        tasks: list[TaskRow] = []
        for key in wanted:
            task = found.get(key)
            if task is None or not self._own_task(task, principal, robot_code):
                failed[key] = "processQueryKey not found"
            elif now - task.accepted_at > self.rt.limits.recall_window:
                failed[key] = "processQueryKey expired"
            else:
                tasks.append(task)
        for task, message_ids in await self.rt.store.write(robot_sql.recall, tasks, now):
            self.rt.events.publish(
                "message.recalled",
                task.corp_id,
                task_id=task.task_id,
                source="robot",
                message_ids=message_ids,
            )
        return RecallResult([k for k in wanted if k not in failed], failed)


def _send_unit(
    tx: Tx, batch: robot_sql.RobotBatch, limit: int | None, clock: Callable[[], float]
) -> robot_sql.SentBatch:
    """A batchSend's unit of work: the store's facts, the domain's decisions, the store's rows."""
    now = clock()
    plan = dispatch_sql.resolve(tx, batch.corp_id, batch.userids, [], False)
    reached = robot_sql.reached_in_minute(tx, batch.robot_code, calendar_minute(now)) if limit else 0
    decisions = robot_messages.decide_recipients(plan.recipients, batch.visible, reached, limit)
    return robot_sql.write_send(tx, batch, decisions, now)
