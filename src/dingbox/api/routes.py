"""dingbox's own API under /api/v1 (DESIGN §7): inspection, inboxes, and test controls.

JSON in and out; every error is `{"error": {"code", "message"}}` with a 4xx status. Test controls
(reset, clock changes, drain) answer 403 to non-loopback clients unless `--test-controls`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from dingbox import errors
from dingbox.api import events, origin, templates
from dingbox.api.waits import WaitAbandoned, unless_disconnected
from dingbox.clock import in_range, parse_iso
from dingbox.domain.org import OrgError
from dingbox.params import JSON_MAX_DEPTH, MAX_INT64, JSONTooDeep, load_json, parse_int64
from dingbox.protocols.http import json_response, read_body
from dingbox.services.browse import MAX_TASKS_PAGE, MAX_USERS_PAGE, UnknownCorp
from dingbox.services.container import Services
from dingbox.services.inbox import MAX_CURSOR, MAX_PAGE, AnchorNotFound, MessageRecalled, UnknownUser

JSON = "application/json"
SOURCES = ("work_notification", "template", "robot", "group_robot")


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def api_error(exc: ApiError) -> Response:
    body = {"error": {"code": exc.code, "message": exc.message}}
    return json_response(body, exc.status, media_type=JSON, headers=exc.headers)


def ok(body: Any, status: int = 200) -> Response:
    return json_response(body, status, media_type=JSON)


def is_loopback(request: Request) -> bool:
    """Whether the client connects from this machine (Starlette's test client calls itself testclient)."""
    host = request.client.host if request.client else ""
    return host == "testclient" or origin.is_loopback(host)


# Org documents of large corps run to megabytes: the API takes far more than a DingTalk call.
API_BODY_LIMIT = 256 * 1024 * 1024


async def json_body(request: Request) -> Any:
    try:
        raw = await read_body(request, API_BODY_LIMIT)
    except errors.BodyTooLarge:
        raise ApiError(
            413, "payload_too_large", f"bodies of the dingbox API are limited to {API_BODY_LIMIT} bytes"
        ) from None
    try:
        return load_json(raw) if raw.strip() else {}
    except JSONTooDeep:
        raise ApiError(400, "invalid_json", f"the body nests deeper than {JSON_MAX_DEPTH} levels") from None
    except ValueError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def int_arg(
    request: Request, name: str, default: int | None = None, *, lo: int = 0, hi: int = MAX_INT64
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = parse_int64(raw)
    if value is None:
        raise ApiError(400, "invalid_request", f"{name} must be an integer")
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_request", f"{name} must be between {lo} and {hi}")
    return value


def float_arg(request: Request, name: str, default: float, hi: float = 600.0) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} must be a number of seconds") from None
    if not 0 <= value <= hi:
        raise ApiError(400, "invalid_request", f"{name} must be between 0 and {hi}")
    return value


def path_int(request: Request, name: str) -> int:
    """An id in the path; anything that cannot be one (not digits, beyond int64) names nothing: 404."""
    raw = request.path_params[name]
    number = parse_int64(raw) if raw.isascii() and raw.isdigit() else None
    if number is None:
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return number


def source_arg(request: Request) -> str | None:
    source = request.query_params.get("source")
    if source is not None and source not in SOURCES:
        raise ApiError(400, "invalid_request", f"source must be one of {', '.join(SOURCES)}")
    return source


def build(services: Services) -> Router:
    settings = services.runtime.settings

    def control(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            if not settings.test_controls and not is_loopback(request):
                raise ApiError(
                    403, "forbidden", "test controls answer loopback clients only; start with --test-controls"
                )
            return await handler(request)

        return guarded

    async def health(request: Request) -> Response:
        body = await services.admin.health()
        return ok(body, 200 if body["status"] == "ok" else 503)

    async def put_org(request: Request) -> Response:
        try:
            counts = await services.org.load(await json_body(request))
        except OrgError as exc:
            raise ApiError(400, "invalid_org", str(exc)) from None
        return ok(counts)

    async def corps(request: Request) -> Response:
        return ok({"corps": await services.org.overview(with_secrets=not settings.auth)})

    async def users(request: Request) -> Response:
        corp_id = request.path_params["corp_id"]
        try:
            page = await services.browse.users(
                corp_id,
                after=request.query_params.get("after", ""),
                limit=int_arg(request, "limit", 200, lo=1, hi=MAX_USERS_PAGE) or 200,
            )
        except UnknownCorp:
            raise ApiError(404, "unknown_corp", f"no corp {corp_id!r}") from None
        return ok(page)

    async def departments(request: Request) -> Response:
        corp_id = request.path_params["corp_id"]
        try:
            return ok(await services.browse.departments(corp_id))
        except UnknownCorp:
            raise ApiError(404, "unknown_corp", f"no corp {corp_id!r}") from None

    async def tasks(request: Request) -> Response:
        status = int_arg(request, "status", lo=0, hi=2)
        try:
            page = await services.browse.tasks(
                limit=int_arg(request, "limit", 50, lo=1, hi=MAX_TASKS_PAGE) or 50,
                before=int_arg(request, "before"),
                corp_id=request.query_params.get("corp_id") or None,
                agent_id=int_arg(request, "agent_id"),
                source=source_arg(request),
                status=status,
            )
        except AnchorNotFound:
            raise ApiError(400, "invalid_request", "before: no such task") from None
        return ok(page)

    async def inbox(request: Request) -> Response:
        source = source_arg(request)
        unread = request.query_params.get("unread", "false").lower()
        if unread not in ("true", "false"):
            raise ApiError(400, "invalid_request", "unread must be true or false")
        try:
            page = await services.inbox.messages(
                request.path_params["corp_id"],
                request.path_params["userid"],
                limit=int_arg(request, "limit", 50, lo=1, hi=MAX_PAGE) or 50,
                before=int_arg(request, "before"),
                source=source,
                unread=unread == "true",
            )
        except AnchorNotFound:
            raise ApiError(400, "invalid_request", "before: no such message") from None
        except UnknownUser:
            raise ApiError(
                404,
                "unknown_user",
                f"corp {request.path_params['corp_id']!r} has no user {request.path_params['userid']!r}"
                " and no messages for that userid",
            ) from None
        return ok(page)

    async def message(request: Request) -> Response:
        found = await services.inbox.message(path_int(request, "message_id"))
        if found is None:
            raise ApiError(404, "not_found", "no such message")
        return ok(found)

    async def read(request: Request) -> Response:
        try:
            found = await services.inbox.mark_read(path_int(request, "message_id"))
        except MessageRecalled:
            raise ApiError(409, "message_recalled", "the message was recalled by its sender") from None
        if found is None:
            raise ApiError(404, "not_found", "no such message")
        return ok(found)

    async def task(request: Request) -> Response:
        lookup = services.inbox.task(
            path_int(request, "task_id"),
            wait=float_arg(request, "wait", 0.0),
            cursor=int_arg(request, "cursor", 0, hi=MAX_CURSOR) or 0,
            limit=int_arg(request, "limit", 1000, lo=1, hi=100000) or 1000,
        )
        try:
            found = await unless_disconnected(request, lookup)
        except WaitAbandoned:
            return Response(status_code=204)  # nobody reads it
        if found is None:
            raise ApiError(404, "not_found", "no such task")
        return ok(found)

    async def drain(request: Request) -> Response:
        try:
            drained = await unless_disconnected(
                request, services.inbox.drain(float_arg(request, "timeout", 30.0))
            )
        except WaitAbandoned:
            return Response(status_code=204)
        if not drained:
            raise ApiError(408, "timeout", "tasks are still pending")
        return ok({"pending_tasks": 0})

    async def reset(request: Request) -> Response:
        await services.admin.reset()
        return Response(status_code=204)

    async def get_clock(request: Request) -> Response:
        return ok(services.runtime.clock.describe())

    async def put_clock(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("now"), str):
            raise ApiError(400, "invalid_request", 'give {"now": "<ISO-8601 with offset>", "frozen": false}')
        try:
            now = parse_iso(body["now"])
        except ValueError as exc:
            raise ApiError(400, "invalid_request", f"now: {exc}") from None
        frozen = body.get("frozen", False)
        if not isinstance(frozen, bool):
            raise ApiError(400, "invalid_request", "frozen must be true or false")
        await services.admin.set_clock(now, frozen)
        return ok(services.runtime.clock.describe())

    async def advance(request: Request) -> Response:
        body = await json_body(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ApiError(400, "invalid_request", 'give {"seconds": N}')
        if not in_range(services.runtime.clock.now() + seconds):
            raise ApiError(400, "invalid_request", "seconds: the clock would leave years 1 to 9998")
        await services.admin.advance_clock(float(seconds))
        return ok(services.runtime.clock.describe())

    routes = [
        Route("/api/v1/health", health, methods=["GET"]),
        Route("/api/v1/org", put_org, methods=["PUT"]),
        Route("/api/v1/corps", corps, methods=["GET"]),
        Route("/api/v1/corps/{corp_id}/users", users, methods=["GET"]),
        Route("/api/v1/corps/{corp_id}/departments", departments, methods=["GET"]),
        Route("/api/v1/corps/{corp_id}/users/{userid}/messages", inbox, methods=["GET"]),
        Route("/api/v1/messages/{message_id}", message, methods=["GET"]),
        Route("/api/v1/messages/{message_id}/read", read, methods=["POST"]),
        Route("/api/v1/tasks", tasks, methods=["GET"]),
        Route("/api/v1/tasks/{task_id}", task, methods=["GET"]),
        Route("/api/v1/dispatch/drain", control(drain), methods=["POST"]),
        Route("/api/v1/reset", control(reset), methods=["POST"]),
        Route("/api/v1/clock", get_clock, methods=["GET"]),
        Route("/api/v1/clock", control(put_clock), methods=["PUT"]),
        Route("/api/v1/clock/advance", control(advance), methods=["POST"]),
        *templates.routes(services),
        *events.routes(services),
    ]
    return Router(routes=routes)
