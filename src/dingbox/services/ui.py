"""What the web UI's pages show, read through the store: inboxes by conversation, tasks with the reason
behind every outcome, quotas against their caps, the org tree, recent activity and search."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dingbox import errors
from dingbox.clock import SHANGHAI, calendar_minute, dingtalk_day
from dingbox.domain.directory import Principal
from dingbox.domain.identifiers import any_names_nothing, names_nothing
from dingbox.domain.pipeline import FORBIDDEN_CODES, threshold
from dingbox.params import MAX_INT64, Params
from dingbox.runtime import Runtime
from dingbox.services.inbox import InboxService, UnknownUser, message_json, outcome_totals
from dingbox.services.notifications import NotificationService
from dingbox.store import browse_sql, result_sql, task_sql, ui_sql
from dingbox.store.result_sql import MessageRow
from dingbox.store.task_sql import TaskRow
from dingbox.store.ui_sql import Chat

__all__ = ["Chat", "UiService"]

USERS_SHOWN = 500
CONTENTS_SHOWN = 100  # the newest contents spent today on the quota page
RESULT_SHOWN = 10_000  # recipients; a bigger getsendresult answer is not printed in a page
HOLDERS_SHOWN = 20


@dataclass
class ChatInfo:
    chat: Chat
    name: str
    kind_label: str
    total: int
    unread: int


@dataclass
class InboxPage:
    corp_id: str
    corp_name: str
    userid: str
    name: str
    active: bool
    chats: list[ChatInfo]
    chat: Chat | None
    messages: list[dict[str, Any]]
    next_before: int | None
    unread: int


@dataclass
class TaskSummary:
    task: TaskRow
    app_name: str
    counts: dict[str, int]


@dataclass
class QuotaRow:
    userid: str
    name: str
    active: bool
    today: int
    cap: int | None

    @property
    def full(self) -> bool:
        return self.cap is not None and self.today >= self.cap


@dataclass
class QuotaPage:
    corp_id: str
    app: Any
    apps: list[Any]
    day: str
    minute: str
    daily_cap: int | None
    daily_code: str
    minute_cap: int | None
    minute_used: int
    minute_code: str
    rows: list[QuotaRow] = field(default_factory=list)
    spent: list[dict[str, Any]] = field(default_factory=list)


def day_bounds(day: str) -> tuple[float, float]:
    """[start, end) of a calendar day in Asia/Shanghai, DingTalk's day; ValueError if not YYYY-MM-DD."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=SHANGHAI)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


class UiService:
    def __init__(self, runtime: Runtime, inbox: InboxService, notifications: NotificationService) -> None:
        self.rt = runtime
        self.inbox_service = inbox
        self.notifications = notifications

    # -- names ----------------------------------------------------------------------------------

    def app_name(self, agent_id: int | None) -> str:
        app = self.rt.directory.apps.get(agent_id or 0)
        return app.name if app else f"app {agent_id}"

    def robot_name(self, robot_code: str | None) -> str:
        robot = self.rt.directory.robots.get(robot_code or "")
        return robot[2] if robot else f"robot {robot_code}"

    def sender_name(self, message: dict[str, Any]) -> str:
        if message["source"] in ("robot", "group_robot") and message.get("robot_code"):
            return self.robot_name(message["robot_code"])
        return self.app_name(message.get("agent_id"))

    def _chat_info(self, summary: ui_sql.ChatSummary) -> ChatInfo:
        chat = summary.chat
        if chat.kind == "robot":
            name, label = self.robot_name(chat.key), "Robot"
        else:
            name, label = self.app_name(int(chat.key)), "Work notification"
        return ChatInfo(chat, name, label, summary.total, summary.unread)

    # -- pages ----------------------------------------------------------------------------------

    async def inbox(
        self, corp_id: str, userid: str, chat: Chat | None, *, before: int | None, limit: int
    ) -> InboxPage:
        store = self.rt.store
        if names_nothing(corp_id) or names_nothing(userid):
            raise UnknownUser(userid)
        person = await store.read(ui_sql.user, corp_id, userid)
        if person is None and not await store.read(browse_sql.inbox_known, corp_id, userid):
            raise UnknownUser(userid)
        anchor = await store.read(result_sql.message_by_id, before) if before is not None else None
        rows: list[MessageRow] = []
        if chat is None or not names_nothing(chat.key):  # a chat key holding a NUL names no sender
            rows = await store.read(ui_sql.chat_page, corp_id, userid, chat, limit=limit, before=anchor)
        more = len(rows) > limit
        rows = rows[:limit]
        chats = [self._chat_info(s) for s in await store.read(ui_sql.conversations, corp_id, userid)]
        return InboxPage(
            corp_id=corp_id,
            corp_name=self.rt.directory.corps.get(corp_id, corp_id),
            userid=userid,
            name=person[0] if person else userid,
            active=bool(person[1]) if person else False,
            chats=chats,
            chat=chat,
            messages=[message_json(r) for r in rows],
            next_before=rows[-1].id if more and rows else None,
            unread=sum(c.unread for c in chats),
        )

    async def messages_after(self, corp_id: str, userid: str, after_id: int) -> list[dict[str, Any]]:
        if names_nothing(corp_id) or names_nothing(userid):
            return []
        rows = await self.rt.store.read(ui_sql.messages_after, corp_id, userid, after_id, 200)
        return [message_json(r) for r in rows]

    async def messages(self, ids: list[int]) -> list[dict[str, Any]]:
        rows: list[MessageRow] = await self.rt.store.read(ui_sql.messages_by_ids, ids)
        return [message_json(r) for r in rows]

    async def task_message_ids(self, task_id: int, corp_id: str, userid: str) -> list[int]:
        task = await self.rt.store.read(task_sql.task_by_id, task_id)
        if task is None or names_nothing(corp_id) or names_nothing(userid):
            return []
        return await self.rt.store.read(ui_sql.task_message_ids, task.seq, corp_id, userid)

    async def conversations(self, corp_id: str, userid: str) -> list[ChatInfo]:
        if names_nothing(corp_id) or names_nothing(userid):
            return []
        return [self._chat_info(s) for s in await self.rt.store.read(ui_sql.conversations, corp_id, userid)]

    async def recent_tasks(self, corp_id: str | None = None, limit: int = 20) -> list[TaskSummary]:
        """The newest tasks with their counts, read as `GET /api/v1/tasks` reads them."""
        if names_nothing(corp_id):
            return []
        summaries = await self.rt.store.read(
            browse_sql.tasks_page,
            before_seq=None,
            limit=limit,
            corp_id=corp_id,
            agent_id=None,
            source=None,
            status=None,
        )
        return [
            TaskSummary(s.task, self.app_name(s.task.agent_id), outcome_totals(s.outcome_counts))
            for s in summaries[:limit]
        ]

    async def task(
        self, task_id: int, *, outcome: str | None, reason: str | None, cursor: int, limit: int
    ) -> dict[str, Any] | None:
        """The task with its recipients (those with `outcome` and `reason` when given, paged), the
        limits behind cap reasons, and the send_result getsendresult answers now."""
        found = await self.inbox_service.task(
            task_id, wait=0, cursor=cursor, limit=limit, outcome=outcome, reason=reason
        )
        if found is None:
            return None
        row = await self.rt.store.read(task_sql.task_by_id, task_id)
        assert row is not None
        limits = self.rt.task_limits(row.agent_id, row.is_isv, template=row.source == "template")
        recipients = found["recipients"]
        for r in recipients:
            r["threshold"] = (
                threshold(r["reason"], limits) if r["reason"] in ("daily_cap", "minute_cap") else None
            )
        return {
            **found,
            "recipients": recipients,
            "app_name": self.app_name(row.agent_id),
            "msgtype": row.msgtype,
            "limits": limits,
            "getsendresult": await self.getsendresult(row),
        }

    async def getsendresult(self, task: TaskRow) -> dict[str, Any] | None:
        """What the task's own app gets from getsendresult now, errors included (a task over the
        recipient limit, outside the 24 h window, or not a work notification); None for a task too
        large to print here."""
        if (task.total or 0) > RESULT_SHOWN:
            return None
        app = self.rt.directory.apps.get(task.agent_id or 0)
        if app is None:
            return {"errcode": errors.TaskInvalid.errcode, "errmsg": errors.TaskInvalid("task_id").message}
        kind, key = ("isv", app.suite_key or "") if app.is_isv else ("internal", app.app_key or "")
        principal = Principal(kind, app.corp_id, key, frozenset({app.agent_id}))
        params = Params({"agent_id": app.agent_id, "task_id": task.task_id}, None)
        try:
            result = await self.notifications.send_result(principal, params)
        except errors.DingboxError as exc:
            return {"errcode": exc.errcode, "errmsg": exc.message}
        return {"errcode": 0, "errmsg": "ok", "send_result": vars(result)}

    async def users(self, corp_id: str) -> list[tuple[Any, ...]]:
        if names_nothing(corp_id):
            return []
        return await self.rt.store.read(ui_sql.users, corp_id, USERS_SHOWN)

    async def org(self, corp_id: str) -> dict[str, Any] | None:
        if corp_id not in self.rt.directory.corps:
            return None
        depts, members = await self.rt.store.read(ui_sql.departments, corp_id)
        by_dept: dict[int, list[dict[str, Any]]] = {}
        for dept_id, userid, name, active in members:
            by_dept.setdefault(dept_id, []).append({"userid": userid, "name": name, "active": bool(active)})
        children: dict[int, list[int]] = {}
        names = {}
        for dept_id, parent_id, name in depts:
            names[dept_id] = name
            if dept_id != 1:
                children.setdefault(parent_id, []).append(dept_id)

        def node(dept_id: int) -> dict[str, Any]:
            return {
                "dept_id": dept_id,
                "name": names[dept_id],
                "members": by_dept.get(dept_id, []),
                "children": [node(c) for c in children.get(dept_id, [])],
            }

        apps = [a for a in self.rt.directory.apps.values() if a.corp_id == corp_id]
        return {
            "corp_id": corp_id,
            "name": self.rt.directory.corps[corp_id],
            "tree": node(1),
            "apps": sorted(apps, key=lambda a: a.agent_id),
            "dept_names": names,
        }

    async def quota(self, corp_id: str, agent_id: int | None) -> QuotaPage | None:
        apps = sorted(
            (a for a in self.rt.directory.apps.values() if a.corp_id == corp_id), key=lambda a: a.agent_id
        )
        if not apps:
            return None
        app = next((a for a in apps if a.agent_id == agent_id), apps[0])
        limits = self.rt.app_limits(app)
        now = self.rt.clock.now()
        day, minute = dingtalk_day(now), calendar_minute(now)
        store = self.rt.store
        today = await store.read(ui_sql.app_day, app.agent_id, day)
        people = await store.read(ui_sql.users, corp_id, USERS_SHOWN)
        side = 1 if app.is_isv else 0
        page = QuotaPage(
            corp_id=corp_id,
            app=app,
            apps=apps,
            day=datetime.fromtimestamp(now, SHANGHAI).strftime("%Y-%m-%d"),
            minute=datetime.fromtimestamp(minute * 60, SHANGHAI).strftime("%H:%M"),
            daily_cap=limits.daily_per_user,
            daily_code=FORBIDDEN_CODES["daily_cap"][side],
            minute_cap=limits.per_minute,
            minute_used=await store.read(ui_sql.minute_count, app.agent_id, minute),
            minute_code=FORBIDDEN_CODES["minute_cap"][side],
        )
        page.rows = [
            QuotaRow(userid, name, active, today.daily.get(userid, 0), limits.daily_per_user)
            for userid, name, active, _unread, _total in people
        ]
        page.rows.sort(key=lambda r: (-r.today, r.name))
        for content_hash, (task_id, msgtype, msg) in await store.read(
            ui_sql.spent_contents, app.agent_id, day, CONTENTS_SHOWN
        ):
            holders = today.holders.get(content_hash, [])
            page.spent.append(
                {
                    "task_id": task_id,
                    "msgtype": msgtype,
                    "msg": msg,
                    "holders": holders[:HOLDERS_SHOWN],
                    "held": len(holders),
                }
            )
        return page

    async def search(
        self,
        *,
        corp_id: str | None,
        text: str | None,
        sender: str | None,
        msgtype: str | None,
        day: str | None,
        userid: str | None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """`sender` is an app or robot (id or name); `day` a DingTalk day (YYYY-MM-DD)."""
        if any_names_nothing((corp_id, text, sender, msgtype, day, userid)):
            return []  # no id holds a NUL, and no stored text does unescaped
        agent_id, robot_code = self._sender(sender) if sender else (None, None)
        rows = await self.rt.store.read(
            ui_sql.search,
            corp_id=corp_id,
            text=text,
            agent_id=agent_id,
            robot_code=robot_code,
            msgtype=msgtype,
            day_range=day_bounds(day) if day else None,
            userid=userid,
            limit=limit,
        )
        return [message_json(r) for r in rows]

    def _sender(self, sender: str) -> tuple[int | None, str | None]:
        """(agent_id, robot_code) a search's sender names: an id, else an app's or a robot's name."""
        directory = self.rt.directory
        if sender.isascii() and sender.isdigit():
            return (int(sender), None) if int(sender) <= MAX_INT64 else (None, sender)
        if sender in directory.robots:
            return None, sender
        folded = sender.casefold()
        for app in directory.apps.values():
            if app.name.casefold() == folded:
                return app.agent_id, None
        for code, (_corp, _agent, name) in directory.robots.items():
            if name.casefold() == folded:
                return None, code
        return None, sender  # names nothing: matches nothing
