"""The oapi surface: path table and the request flow every oapi call takes.

method check → bounded body → parameters (query + body) → token (topapi and legacy paths) →
handler → envelope. A body that cannot be read answers a token error first, as DingTalk's gateway
does. Errors raised anywhere are rendered by `envelope.error` for the path's family.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dingbox import errors
from dingbox.domain.directory import Principal
from dingbox.params import Params
from dingbox.protocols.http import read_body
from dingbox.protocols.oapi import envelope, messages, tokens
from dingbox.protocols.oapi.wire import read_params
from dingbox.services.container import Services

log = logging.getLogger("dingbox.oapi")


@dataclass
class OapiCall:
    request: Request
    params: Params
    principal: Principal
    services: Services


Handler = Callable[[OapiCall], Awaitable[dict[str, Any] | Response]]


@dataclass(frozen=True)
class OapiRoute:
    handler: Handler
    methods: frozenset[str] = frozenset({"POST"})
    family: str = "topapi"  # topapi | legacy | token
    auth: bool = True
    unexpected: type[errors.DingboxError] = errors.SystemBusy  # the API's answer to a failure nobody foresaw


_MESSAGES = "/topapi/message/corpconversation/"

ROUTES: dict[str, OapiRoute] = {
    "/gettoken": OapiRoute(tokens.gettoken, frozenset({"GET"}), "token", auth=False),
    "/service/get_suite_token": OapiRoute(tokens.get_suite_token, family="token", auth=False),
    "/service/get_corp_token": OapiRoute(tokens.get_corp_token, family="token", auth=False),
    _MESSAGES + "asyncsend_v2": OapiRoute(messages.asyncsend_v2),
    _MESSAGES + "sendbytemplate": OapiRoute(messages.sendbytemplate, unexpected=errors.SystemException),
    _MESSAGES + "getsendprogress": OapiRoute(messages.getsendprogress),
    _MESSAGES + "getsendresult": OapiRoute(messages.getsendresult),
    _MESSAGES + "recall": OapiRoute(messages.recall),
    _MESSAGES + "status_bar/update": OapiRoute(messages.status_bar_update),
}


def api_name(path: str) -> str:
    """DingTalk's ApiName for a topapi path: `dingtalk.oapi.` + the rest with `/` → `.`."""
    return "dingtalk.oapi." + path[len("/topapi/") :].strip("/").replace("/", ".")


async def handle(request: Request, services: Services) -> Response:
    path: str = request.scope["path"]
    route = ROUTES.get(path)
    family = "topapi" if path.startswith("/topapi/") else "legacy"
    try:
        if route is None:
            raise errors.UnknownApi(api_name(path)) if family == "topapi" else errors.UnknownPath()
        family = route.family
        if request.scope["method"] not in route.methods:
            raise errors.GetRequired() if "GET" in route.methods else errors.PostRequired()
        body = await read_body(request, services.runtime.settings.body_limit)
        try:
            params = await read_params(request, body)
        except errors.ParameterError:
            if route.auth:  # DingTalk's gateway checks the token before the API reads its body
                await services.tokens.authenticate(request.query_params.get("access_token"))
            raise
        principal = await services.tokens.authenticate(params.token) if route.auth else None
        result = await route.handler(OapiCall(request, params, principal, services))  # type: ignore[arg-type]
    except errors.DingboxError as exc:
        return envelope.error(exc, family=family)
    except Exception as exc:
        # a failing store is logged once by the store; anything else is a fault of ours, with its trace
        if not isinstance(exc, errors.Unavailable):
            log.exception("unexpected failure on %s %s", request.method, path)
        # DingTalk's system error on oapi: -1 系统繁忙, or the route's own (sendbytemplate: 500 系统异常)
        unexpected = route.unexpected if route is not None else errors.SystemBusy
        return envelope.error(unexpected(), family=family)
    if isinstance(result, Response):
        return result
    return envelope.ok(result, request_id=family != "token", media_type=envelope.media_type(family))
