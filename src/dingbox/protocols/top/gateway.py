"""The TOP gateway (`POST /router/rest?method=…`, spec §3.9), as `dingtalk-sdk` calls it.

Parameters come in the query string (and a form body), the token as `session`. Gateway errors
answer `{"error_response": {...}}`; a method's own answer sits under `<method with _>_response`:
flat oapi fields for `dingtalk.oapi.*` methods, a `result` with `success` for `dingtalk.corp.*` ones.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dingbox import errors, ids
from dingbox.domain.directory import Principal
from dingbox.params import Params
from dingbox.protocols.http import json_response, read_body
from dingbox.protocols.oapi.wire import read_params
from dingbox.services.container import Services

log = logging.getLogger("dingbox.top")
Method = Callable[[Services, Principal, Params], Awaitable[dict[str, Any]]]


async def _asyncsend_v2(services: Services, principal: Principal, params: Params) -> dict[str, Any]:
    task = await services.notifications.asyncsend_v2(principal, params)
    return {"task_id": task.task_id}


async def _recall(services: Services, principal: Principal, params: Params) -> dict[str, Any]:
    await services.notifications.recall(principal, params)
    return {}


async def _progress(services: Services, principal: Principal, params: Params) -> dict[str, Any]:
    task = await services.notifications.owned_task(principal, params)
    return {"progress": {"progress_in_percent": task.progress_in_percent, "status": task.status}}


async def _result(services: Services, principal: Principal, params: Params) -> dict[str, Any]:
    return {"send_result": vars(await services.notifications.send_result(principal, params))}


METHODS: dict[str, Method] = {
    "dingtalk.oapi.message.corpconversation.asyncsend_v2": _asyncsend_v2,
    "dingtalk.oapi.message.corpconversation.recall": _recall,
    "dingtalk.corp.message.corpconversation.getsendprogress": _progress,
    "dingtalk.corp.message.corpconversation.getsendresult": _result,
}


def _gateway_error(exc: errors.DingboxError) -> Response:
    """`error_response` from the error's TOP form; a reason beyond the bare message goes in `sub_msg`."""
    top = exc.top or errors.TopServiceUnavailable.top  # only gateway-level errors carry a TOP form
    assert top is not None
    code, msg, sub_code = top
    body: dict[str, Any] = {"code": code, "msg": msg}
    if sub_code:
        body["sub_code"] = sub_code
    if exc.message != exc.errmsg:
        body["sub_msg"] = exc.message
    body["request_id"] = ids.request_id()
    return json_response({"error_response": body})


def _answer(method: str, payload: dict[str, Any] | None, exc: errors.DingboxError | None) -> Response:
    key = method.replace(".", "_") + "_response"
    if method.startswith("dingtalk.corp."):
        result: dict[str, Any] = {"ding_open_errcode": 0, "error_msg": "", "success": True}
        if exc is not None:
            result = {"ding_open_errcode": exc.errcode, "error_msg": exc.message, "success": False}
        else:
            result.update(payload or {})
        return json_response({key: {"result": result, "request_id": ids.request_id()}})
    body: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
    if exc is not None:
        body = {"errcode": exc.errcode, "errmsg": exc.message}
    else:
        body.update(payload or {})
    body["request_id"] = ids.request_id()
    return json_response({key: body})


async def _gateway(request: Request, services: Services) -> tuple[str, Principal, Params]:
    """What the gateway checks before any method runs: verb, body, method name, session."""
    if request.method not in ("POST", "GET"):
        raise errors.TopHttpActionNotAllowed()
    try:
        body = await read_body(request, services.runtime.settings.body_limit)
        params = await read_params(request, body)
    except errors.DingboxError as exc:
        raise errors.TopInvalidArguments(exc.message) from None
    method_name = params.values.pop("method", None)
    session = params.values.pop("session", None)
    for envelope_param in (
        "timestamp",
        "format",
        "v",
        "simplify",
        "partner_id",
        "sign",
        "sign_method",
        "app_key",
    ):
        params.values.pop(envelope_param, None)
    if not method_name:
        raise errors.TopMissingMethod()
    if str(method_name) not in METHODS:
        raise errors.TopInvalidMethod()
    principal = await services.tokens.authenticate(str(session) if session else None)
    return str(method_name), principal, params


async def handle(request: Request, services: Services) -> Response:
    try:
        method_name, principal, params = await _gateway(request, services)
    except errors.DingboxError as exc:
        return _gateway_error(exc)
    except Exception:
        log.exception("unexpected failure in the TOP gateway")
        return _gateway_error(errors.TopServiceUnavailable())
    try:
        payload = await METHODS[method_name](services, principal, params)
    except errors.DingboxError as exc:
        return _answer(method_name, None, exc)
    except errors.Unavailable:  # logged once by the store
        return _answer(method_name, None, errors.StoreUnavailable())
    except Exception:
        log.exception("unexpected failure in %s", method_name)
        return _answer(method_name, None, errors.SystemBusy())
    return _answer(method_name, payload, None)
