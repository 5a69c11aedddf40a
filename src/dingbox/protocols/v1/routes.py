"""The v1.0 surface: path table and request flow (token header, JSON body, HTTP-status errors)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dingbox import errors
from dingbox.domain.directory import Principal
from dingbox.params import load_json
from dingbox.protocols.http import read_body
from dingbox.protocols.v1 import envelope, oauth2, robots
from dingbox.services.container import Services

log = logging.getLogger("dingbox.v1")
TOKEN_HEADER = "x-acs-dingtalk-access-token"


@dataclass
class V1Call:
    request: Request
    body: dict[str, Any]
    principal: Principal | None
    services: Services

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = self.body.get(name)
        if value is None or value == "":
            if required:
                raise errors.MissingParameter(name)
            return None
        if not isinstance(value, str):
            raise errors.InvalidParameter(name)
        return value


Handler = Callable[[V1Call], Awaitable[dict[str, Any] | Response]]


@dataclass(frozen=True)
class V1Route:
    handler: Handler
    method: str = "POST"
    auth: bool = True
    # the error for a body that is not a JSON object (robot endpoints name their own code)
    bad_body: type[errors.DingboxError] = errors.ParameterError


ROUTES: dict[str, V1Route] = {
    "/v1.0/oauth2/accessToken": V1Route(oauth2.access_token, auth=False),
    "/v1.0/oauth2/suiteAccessToken": V1Route(oauth2.suite_access_token, auth=False),
    "/v1.0/oauth2/corpAccessToken": V1Route(oauth2.corp_access_token, auth=False),
    # DingTalk's own spellings: `oToMessages` for send and read status, `otoMessages` for recall
    "/v1.0/robot/oToMessages/batchSend": V1Route(robots.batch_send, bad_body=errors.RobotBodyInvalid),
    "/v1.0/robot/oToMessages/readStatus": V1Route(robots.read_status, method="GET"),
    "/v1.0/robot/otoMessages/batchRecall": V1Route(robots.batch_recall, bad_body=errors.RobotBodyInvalid),
}


async def handle(request: Request, services: Services) -> Response:
    route = ROUTES.get(request.scope["path"])
    try:
        if route is None or request.method != route.method:
            raise errors.RoutingError()
        principal = None
        if route.auth:
            principal = await services.tokens.authenticate(request.headers.get(TOKEN_HEADER))
        raw = await read_body(request, services.runtime.settings.body_limit)
        body: Any = {}
        if raw.strip() and route.method != "GET":  # a GET's parameters are its query; a body is ignored
            try:
                body = load_json(raw)
            except ValueError:  # not JSON, or nesting deeper than JSON_MAX_DEPTH
                raise route.bad_body() from None
            if not isinstance(body, dict):
                raise route.bad_body()
        result = await route.handler(V1Call(request, body, principal, services))
    except errors.DingboxError as exc:
        return envelope.error(exc)
    except errors.Unavailable:  # logged once by the store
        return envelope.error(errors.StoreUnavailable())
    except Exception:
        log.exception("unexpected failure on %s %s", request.method, request.url.path)
        return envelope.error(errors.SystemBusy())
    return result if isinstance(result, Response) else envelope.ok(result)
