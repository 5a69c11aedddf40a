"""`/api/v1/templates`: list, read, create, replace the message of, approve and disable templates.

Templates changed here live in the store beside those of the org file; an org load that names their
corp replaces its templates with the file's, as it replaces everything else of the corp.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dingbox.api import routes as api
from dingbox.domain.templates import TEMPLATE_STATUSES
from dingbox.services.container import Services
from dingbox.services.templates import (
    TemplateDraft,
    TemplateIdTaken,
    TemplateNotKnown,
    TemplateRejected,
    TemplateRow,
    template_json,
)

_CREATE_FIELDS = ("template_id", "agent_id", "status", "msg")


def _rejected(message: str) -> api.ApiError:
    return api.ApiError(400, "invalid_template", message)


async def _body(request: Request, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    body = await api.json_body(request)
    if not isinstance(body, dict):
        raise _rejected("the body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise _rejected(f"{key}: unknown field")
    for key in required:
        if body.get(key) is None:
            raise _rejected(f"{key}: is required")
    return body


def _answer(row: TemplateRow, status: int = 200) -> Response:
    return api.ok(template_json(row), status)


def routes(services: Services) -> list[Route]:
    templates = services.templates

    async def find(request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in TEMPLATE_STATUSES:
            raise api.ApiError(
                400, "invalid_request", f"status must be one of {', '.join(TEMPLATE_STATUSES)}"
            )
        found = await templates.find(
            corp_id=request.query_params.get("corp_id"),
            agent_id=api.int_arg(request, "agent_id"),
            status=status,
        )
        return api.ok({"templates": [template_json(row) for row in found]})

    async def create(request: Request) -> Response:
        body = await _body(request, _CREATE_FIELDS, ("agent_id", "msg"))
        agent_id, template_id = body["agent_id"], body.get("template_id")
        status = body.get("status", "pending")
        if isinstance(agent_id, bool) or not isinstance(agent_id, int):
            raise _rejected("agent_id: must be an integer")
        if template_id is not None and not isinstance(template_id, str):
            raise _rejected("template_id: must be a string")
        if not isinstance(status, str):
            raise _rejected("status: must be a string")
        try:
            row = await templates.create(TemplateDraft(template_id, agent_id, status, body["msg"]))
        except TemplateRejected as exc:
            raise _rejected(str(exc)) from None
        except TemplateIdTaken:
            raise api.ApiError(409, "template_exists", f"template_id {template_id!r} is taken") from None
        return _answer(row, 201)

    async def one(request: Request) -> Response:
        return _answer(await _known(templates.get(request.path_params["template_id"])))

    async def replace(request: Request) -> Response:
        body = await _body(request, ("msg",), ("msg",))
        try:
            changed = templates.replace_msg(request.path_params["template_id"], body["msg"])
            return _answer(await _known(changed))
        except TemplateRejected as exc:
            raise _rejected(str(exc)) from None

    async def approve(request: Request) -> Response:
        return _answer(await _known(templates.set_status(request.path_params["template_id"], "approved")))

    async def disable(request: Request) -> Response:
        return _answer(await _known(templates.set_status(request.path_params["template_id"], "disabled")))

    return [
        Route("/api/v1/templates", find, methods=["GET"]),
        Route("/api/v1/templates", create, methods=["POST"]),
        Route("/api/v1/templates/{template_id}", one, methods=["GET"]),
        Route("/api/v1/templates/{template_id}", replace, methods=["PUT"]),
        Route("/api/v1/templates/{template_id}/approve", approve, methods=["POST"]),
        Route("/api/v1/templates/{template_id}/disable", disable, methods=["POST"]),
    ]


async def _known(lookup: Awaitable[TemplateRow]) -> TemplateRow:
    """Await a lookup of one template; an unknown id is a 404."""
    try:
        return await lookup
    except TemplateNotKnown:
        raise api.ApiError(404, "not_found", "no such template") from None
