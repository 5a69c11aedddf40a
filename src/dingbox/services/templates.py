"""Message templates (spec §3.2): sendbytemplate, and managing the templates behind it.

A send fills the template's placeholders from `data`, validates the result as any work notification
(field rules, 2048 bytes) and hands it to the notification service's acceptance: the task is
stored with the substituted message, so the dispatcher, the pipeline, the results, recall and the
inbox treat it as they treat asyncsend_v2's, and editing the template later changes no task.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from dingbox import errors
from dingbox.domain.directory import Principal
from dingbox.domain.identifiers import names_nothing
from dingbox.domain.messages import accept_message, advisory_warnings, content_hash
from dingbox.domain.templates import (
    TEMPLATE_STATUSES,
    fill,
    missing_warnings,
    msg_problem,
    template_message,
)
from dingbox.runtime import Runtime
from dingbox.services.notifications import AcceptedTask, NotificationService
from dingbox.store import template_sql
from dingbox.store.task_sql import NewTask
from dingbox.store.template_sql import TemplateRow

__all__ = ["TemplateRow", "TemplateService"]

MAX_TEMPLATE_ID = 64


@dataclass(frozen=True)
class TemplateSend:
    """One sendbytemplate call, as read from whichever wire form it came in."""

    agent_id: int
    template_id: str
    userids: list[str]
    dept_ids: list[str]  # int64 decimal text
    data: dict[str, str]
    request: dict[str, Any]  # the parameters as received, token removed, kept on the task
    warnings: list[str]  # about lenient parsing of the wire form


@dataclass(frozen=True)
class TemplateDraft:
    """A template to create through the dingbox API; `template_id` None draws one."""

    template_id: str | None
    agent_id: int
    status: str
    msg: dict[str, Any]


class TemplateNotKnown(LookupError):
    pass


class TemplateRejected(ValueError):
    """A template the API cannot take; the message starts with the field at fault."""


class TemplateIdTaken(ValueError):
    pass


def template_json(row: TemplateRow) -> dict[str, Any]:
    return asdict(row)


class TemplateService:
    def __init__(self, runtime: Runtime, notifications: NotificationService) -> None:
        self.rt = runtime
        self.notifications = notifications

    # -- sending ----------------------------------------------------------------------------------

    @staticmethod
    def authorize(principal: Principal) -> None:
        """Templates are for third-party (ISV) apps only: DingTalk's gateway refuses an internal app's
        token before the API reads a parameter (DESIGN §4)."""
        if not principal.is_isv:
            raise errors.NoPermission()

    async def send(self, principal: Principal, call: TemplateSend) -> AcceptedTask:
        """Checks in order: caller (60011; the adapter has also checked it before reading any
        parameter, and read them: 40035), agent (400002), template (885001, 885006), recipients
        (40035, 40032, 40066), then the substituted message as any message (40035, 45002)."""
        self.authorize(principal)
        app = self.notifications.owned_app(principal, call.agent_id)
        template = None
        if not names_nothing(call.template_id):
            template = await self.rt.store.read(template_sql.template_by_id, call.template_id)
        if template is None or template.agent_id != app.agent_id:
            raise errors.TemplateNotFound()
        if template.status != "approved":
            raise errors.TemplateUnavailable()
        limits = self.rt.app_limits(app, template=True)
        self.notifications.check_recipients(limits, call.userids, call.dept_ids, False)
        filled = fill(template_message(template.msg), call.data)
        canonical, body = accept_message(filled.msg)
        task = NewTask(
            source="template",
            corp_id=app.corp_id,
            agent_id=app.agent_id,
            app_type=app.type,
            request=call.request,
            msgtype=canonical["msgtype"],
            msg=body,
            content_hash=content_hash(body),
            userids=call.userids,
            dept_ids=call.dept_ids,
            to_all_user=False,
            warnings=call.warnings
            + missing_warnings(filled.missing)
            + advisory_warnings(canonical, len(body)),
            not_before=self.notifications.not_before(),
            template_id=template.template_id,
            template_data=call.data,
        )
        return await self.notifications.accept(task)

    # -- managing (the dingbox API) ----------------------------------------------------------------

    async def find(
        self, corp_id: str | None = None, agent_id: int | None = None, status: str | None = None
    ) -> list[TemplateRow]:
        if names_nothing(corp_id) or names_nothing(status):
            return []  # an id holding a NUL names no corp
        return await self.rt.store.read(template_sql.list_templates, corp_id, agent_id, status)

    async def get(self, template_id: str) -> TemplateRow:
        found = None
        if not names_nothing(template_id):
            found = await self.rt.store.read(template_sql.template_by_id, template_id)
        return self._found(found, template_id)

    async def create(self, draft: TemplateDraft) -> TemplateRow:
        template_id = uuid.uuid4().hex if draft.template_id is None else draft.template_id
        if not 0 < len(template_id) <= MAX_TEMPLATE_ID or template_id != template_id.strip():
            raise TemplateRejected(f"template_id: 1 to {MAX_TEMPLATE_ID} characters, no surrounding spaces")
        if names_nothing(template_id):
            raise TemplateRejected("template_id: must not hold a NUL character")
        app = self.rt.directory.apps.get(draft.agent_id)
        if app is None or not app.is_isv:
            raise TemplateRejected(f"agent_id: no ISV app {draft.agent_id}; templates belong to ISV apps")
        if draft.status not in TEMPLATE_STATUSES:
            raise TemplateRejected(f"status: must be {', '.join(TEMPLATE_STATUSES)}")
        self._check_msg(draft.msg)
        row = TemplateRow(template_id, app.corp_id, app.agent_id, draft.status, draft.msg)
        if not await self.rt.store.write(template_sql.insert_template, row):
            raise TemplateIdTaken(template_id)
        return row

    async def replace_msg(self, template_id: str, msg: Any) -> TemplateRow:
        self._check_msg(msg)
        if names_nothing(template_id):
            raise TemplateNotKnown(template_id)
        changed = await self.rt.store.write(template_sql.replace_msg, template_id, msg)
        return self._found(changed, template_id)

    async def set_status(self, template_id: str, status: str) -> TemplateRow:
        if names_nothing(template_id):
            raise TemplateNotKnown(template_id)
        changed = await self.rt.store.write(template_sql.set_status, template_id, status)
        return self._found(changed, template_id)

    @staticmethod
    def _check_msg(msg: Any) -> None:
        problem = msg_problem(msg)
        if problem is not None:
            raise TemplateRejected(f"{problem[0]}: {problem[1]}")

    @staticmethod
    def _found(row: TemplateRow | None, template_id: str) -> TemplateRow:
        if row is None:
            raise TemplateNotKnown(template_id)
        return row
