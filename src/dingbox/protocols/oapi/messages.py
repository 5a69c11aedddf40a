"""oapi work-notification endpoints (spec §3.1–§3.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dingbox.domain.templates import coerce_data
from dingbox.params import Params
from dingbox.services.templates import TemplateSend

if TYPE_CHECKING:
    from dingbox.protocols.oapi.routes import OapiCall


async def asyncsend_v2(call: OapiCall) -> dict[str, Any]:
    task = await call.services.notifications.asyncsend_v2(call.principal, call.params)
    return {"task_id": task.task_id}


def template_send(params: Params) -> TemplateSend:
    """sendbytemplate's parameters, in whichever encoding they came, as the template service's request."""
    agent_id = params.integer("agent_id")
    template_id = params.text("template_id")
    assert agent_id is not None and template_id is not None
    userids = params.id_list("userid_list")
    dept_ids = params.int_list("dept_id_list")  # typed as DingTalk types it: 40035 for "abc"
    data, data_warnings = coerce_data(params.raw("data"))
    return TemplateSend(
        agent_id=agent_id,
        template_id=template_id,
        userids=userids,
        dept_ids=dept_ids,
        data=data,
        request=params.values,
        warnings=params.warnings + data_warnings,
    )


async def sendbytemplate(call: OapiCall) -> dict[str, Any]:
    templates = call.services.templates
    templates.authorize(call.principal)  # before any parameter is read, as DingTalk's gateway does
    task = await templates.send(call.principal, template_send(call.params))
    return {"task_id": task.task_id}


async def getsendprogress(call: OapiCall) -> dict[str, Any]:
    task = await call.services.notifications.owned_task(call.principal, call.params)
    return {"progress": {"progress_in_percent": task.progress_in_percent, "status": task.status}}


async def getsendresult(call: OapiCall) -> dict[str, Any]:
    result = await call.services.notifications.send_result(call.principal, call.params)
    return {"send_result": vars(result)}


async def recall(call: OapiCall) -> dict[str, Any]:
    await call.services.notifications.recall(call.principal, call.params)
    return {}


async def status_bar_update(call: OapiCall) -> dict[str, Any]:
    await call.services.notifications.update_status_bar(call.principal, call.params)
    return {}
