"""oapi work-notification endpoints (spec §3.1, §3.3–§3.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dingbox.protocols.oapi.routes import OapiCall


async def asyncsend_v2(call: OapiCall) -> dict[str, Any]:
    task = await call.services.notifications.asyncsend_v2(call.principal, call.params)
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
