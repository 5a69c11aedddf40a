"""v1.0 envelopes (spec §8.2): the business object on success; 4xx/5xx with code, message, requestid."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from dingbox import errors, ids
from dingbox.protocols.http import json_response

V1_JSON = "application/json;charset=utf-8"


def ok(payload: dict[str, Any]) -> Response:
    return json_response(payload, media_type=V1_JSON, headers={"x-acs-request-id": ids.v1_request_id()})


def error(exc: errors.DingboxError) -> Response:
    request_id = ids.v1_request_id()
    body: dict[str, Any] = {"code": exc.v1_code, "requestid": request_id, "message": exc.v1_message}
    if isinstance(exc, errors.NoPermission):
        body["accessdenieddetail"] = {}
    return json_response(body, exc.v1_status, media_type=V1_JSON, headers={"x-acs-request-id": request_id})
