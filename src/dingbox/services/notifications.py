"""Work notifications (spec §3): accept asyncsend_v2, then progress, results, recall and the status bar.

Accepting validates everything a caller can get wrong synchronously and stores the task durably
before its `task_id` is returned; who receives it is decided by the dispatcher (DESIGN §3): in the
accepting transaction when the dispatcher gives terms for it (`Dispatcher.terms`), else by its loops.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson

from dingbox import errors, logs
from dingbox.dispatch import units
from dingbox.domain.directory import AppInfo, Principal
from dingbox.domain.limits import AppLimits
from dingbox.domain.messages import _status_bar as validate_status_bar
from dingbox.domain.messages import accept_message, advisory_warnings, content_hash
from dingbox.domain.pipeline import threshold
from dingbox.params import Params
from dingbox.runtime import Runtime
from dingbox.store import result_sql, task_sql
from dingbox.store.result_sql import ResultLists
from dingbox.store.task_sql import NewTask, TaskRow

NOTIFICATION_SOURCES = ("work_notification", "template")
log = logging.getLogger("dingbox.notifications")


class AcceptedTask(NamedTuple):
    seq: int
    task_id: int


@dataclass(frozen=True)
class SendResult:
    invalid_user_id_list: list[str]
    forbidden_user_id_list: list[str]
    failed_user_id_list: list[str]
    read_user_id_list: list[str]
    unread_user_id_list: list[str]
    invalid_dept_id_list: list[Any]
    forbidden_list: list[dict[str, Any]]


class AcceptedTasks(Protocol):
    """Who learns of accepted tasks (the dispatcher): the terms a task may be decided under in its
    accepting transaction, then what that decided, or None for a task left to its loops."""

    async def terms(self, task: NewTask) -> units.DecideTerms | None: ...

    def accepted(self, written: units.Written | None) -> None: ...


class _NoDispatcher:
    async def terms(self, task: NewTask) -> units.DecideTerms | None:
        return None

    def accepted(self, written: units.Written | None) -> None:
        pass


class NotificationService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.dispatcher: AcceptedTasks = _NoDispatcher()

    # -- accepting ------------------------------------------------------------------------------

    def owned_app(self, principal: Principal, agent_id: int) -> AppInfo:
        app = self.rt.directory.owned_app(principal, agent_id)
        if app is None:
            raise errors.AgentIdInvalid()
        return app

    @staticmethod
    def check_recipients(limits: AppLimits, userids: list[str], dept_ids: list[str], to_all: bool) -> None:
        """Some recipient given, and the lists within the limits of the app (and of the API)."""
        if not userids and not dept_ids and not to_all:
            raise errors.MissingParameter("userid_list/dept_id_list")
        if limits.userid_list is not None and len(userids) > limits.userid_list:
            raise errors.UserListTooLong()
        if limits.dept_id_list is not None and len(dept_ids) > limits.dept_id_list:
            raise errors.DeptListTooLong()

    def not_before(self) -> float:
        """When a task accepted now may be dispatched (`--dispatch-delay`)."""
        return time.time() + self.rt.settings.dispatch_delay

    async def asyncsend_v2(self, principal: Principal, params: Params) -> AcceptedTask:
        agent_id = params.integer("agent_id")
        assert agent_id is not None
        if not params.has("msg"):
            raise errors.MissingParameter("msg")
        app = self.owned_app(principal, agent_id)
        userids = params.id_list("userid_list")
        dept_ids = params.int_list("dept_id_list")
        to_all = params.boolean("to_all_user")
        if to_all and app.is_isv:
            raise errors.NoPermission()
        self.check_recipients(self.rt.app_limits(app), userids, dept_ids, to_all)
        msg = params.json_object("msg")
        assert msg is not None
        canonical, body = accept_message(msg)
        task = NewTask(
            source="work_notification",
            corp_id=app.corp_id,
            agent_id=agent_id,
            app_type=app.type,
            request=params.values,
            msgtype=canonical["msgtype"],
            msg=body,
            content_hash=content_hash(body),
            userids=userids,
            dept_ids=dept_ids,
            to_all_user=to_all,
            warnings=params.warnings + advisory_warnings(canonical, len(body)),
            not_before=self.not_before(),
        )
        return await self.accept(task)

    async def accept(self, task: NewTask) -> AcceptedTask:
        """Store a task with the virtual time of the accepting transaction, deciding it there too when
        the dispatcher gives terms (`units.accept_tasks`); then publish, or wake a dispatcher."""
        prepared = task_sql.PreparedTask.of(task)
        terms = await self.dispatcher.terms(task)
        seq, task_id, written = await self.rt.store.write_batched(
            units.accept_tasks, (prepared, self.rt.clock.now, terms)
        )
        self.rt.events.publish(
            "task.accepted", task.corp_id, task_id=task_id, source=task.source, agent_id=task.agent_id
        )
        logs.info(
            log,
            "task %d accepted: agent_id=%s corp=%s source=%s userids=%d depts=%d to_all=%s",
            task_id,
            task.agent_id,
            task.corp_id,
            task.source,
            len(task.userids),
            len(task.dept_ids),
            task.to_all_user,
        )
        self.dispatcher.accepted(written)
        return AcceptedTask(seq, task_id)

    # -- reading back ---------------------------------------------------------------------------

    async def owned_task(
        self, principal: Principal, params: Params, name: str = "task_id", *, agent_required: bool = True
    ) -> TaskRow:
        """The caller's task; unknown ids and other apps' or corps' tasks give the same error (no oracle).

        `agent_id` is required except on getsendresult, where some of DingTalk's pages mark it optional
        (spec §10 #5); when given, it must be the token's app, as on a send (DESIGN §4).
        """
        agent_id = params.integer("agent_id", required=agent_required)
        if agent_id is not None:
            self.owned_app(principal, agent_id)
        task_id = params.integer(name)
        task = await self.rt.store.read(task_sql.task_by_id, task_id)
        if (
            task is None
            or task.source not in NOTIFICATION_SOURCES
            or task.corp_id != principal.corp_id
            or task.agent_id not in principal.agent_ids
            or (agent_id is not None and agent_id != task.agent_id)
        ):
            raise errors.TaskInvalid(name)
        return task

    def _within(self, task: TaskRow, window: int, name: str, what: str) -> None:
        if self.rt.clock.now() - task.accepted_at > window:
            raise errors.TaskInvalid(name, what)

    async def send_result(self, principal: Principal, params: Params) -> SendResult:
        task = await self.owned_task(principal, params, agent_required=False)
        self._within(task, self.rt.limits.result_window, "task_id", "只能查询24小时内的发送结果")
        cap = self.rt.limits.result_max_recipients
        size = task.total if task.total is not None else len(task_sql_userids(task))
        if cap is not None and size > cap:
            raise errors.CallTimeout()
        lists = await self.rt.store.read(result_sql.result_lists, task.seq)
        limits = self.rt.task_limits(task.agent_id, task.is_isv, template=task.source == "template")
        return build_send_result(task, lists, limits)

    async def recall(self, principal: Principal, params: Params) -> None:
        task = await self.owned_task(principal, params, "msg_task_id")
        self._within(task, self.rt.limits.recall_window, "msg_task_id", "消息已超过撤回时限")
        await self.rt.store.write(task_sql.recall_task, task.seq, self.rt.clock.now())
        self.rt.events.publish(
            "message.recalled", task.corp_id, task_id=task.task_id, source=task.source, message_ids=None
        )

    async def update_status_bar(self, principal: Principal, params: Params) -> None:
        status_value = params.text("status_value") or ""
        if not status_value.strip():
            raise errors.MissingParameter("status_value")
        bar = {"status_value": status_value}
        status_bg = params.text("status_bg", required=False)
        if status_bg is not None:
            bar["status_bg"] = status_bg
        try:
            validate_status_bar(bar, "status_bar")
        except errors.InvalidParameter:
            # the colour rule is the OA message's; report it under the parameter the caller sent
            raise errors.InvalidParameter("status_bg", "0xAARRGGBB") from None
        task = await self.owned_task(principal, params)
        if task.msgtype != "oa":
            raise errors.TaskInvalid("task_id", "只有OA消息可以更新状态栏")
        self._within(task, self.rt.limits.status_bar_window, "task_id", "只能更新7天内的消息状态栏")
        await self.rt.store.write(task_sql.update_status_bar, task.seq, bar)


def task_sql_userids(task: TaskRow) -> list[str]:
    return list(orjson.loads(task.userids))


def build_send_result(task: TaskRow, lists: ResultLists, limits: AppLimits) -> SendResult:
    """getsendresult's send_result; `forbidden_list` names the flow-control code and its threshold."""
    return SendResult(
        invalid_user_id_list=lists.invalid,
        forbidden_user_id_list=[userid for userid, _, _ in lists.forbidden],
        failed_user_id_list=lists.failed,
        read_user_id_list=lists.read,
        unread_user_id_list=lists.unread,
        invalid_dept_id_list=list(orjson.loads(task.invalid_dept_ids)),
        forbidden_list=[
            {"code": code, "count": threshold(reason, limits), "userid": userid}
            for userid, reason, code in lists.forbidden
            if code is not None
        ],
    )
