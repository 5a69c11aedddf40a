"""oapi envelopes (spec §2.2, §8.1): always HTTP 200, `errcode`/`errmsg`, a `request_id`.

Gateway errors (tokens, permissions) are wrapped by DingTalk's topapi gateway as errcode 88 with a
string `sub_code`; on legacy paths the same errors come flat with their legacy codes.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from dingbox import errors, ids
from dingbox.protocols.http import JSON_UTF8, json_response


def ok(
    payload: dict[str, Any] | None = None, *, request_id: bool = True, media_type: str = JSON_UTF8
) -> Response:
    body: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
    if payload:
        body.update(payload)
    if request_id:
        body["request_id"] = ids.request_id()
    return json_response(body, media_type=media_type)


def error_body(exc: errors.DingboxError, *, family: str) -> dict[str, Any]:
    """The error's body for a path family: `topapi`, `legacy` or `token` (gettoken and /service)."""
    if isinstance(exc, errors.GatewayError):
        if family == "topapi":
            sub_code, sub_msg = str(exc.errcode), exc.message
            return {
                "errcode": 88,
                "sub_code": sub_code,
                "sub_msg": sub_msg,
                "errmsg": f"ding talk error[subcode={sub_code},submsg={sub_msg}]",
                "request_id": ids.request_id(),
            }
        code, message = exc.legacy
        return {"errcode": code, "errmsg": message}
    if isinstance(exc, errors.UnknownApi):
        return {
            "errcode": exc.errcode,
            "sub_msg": exc.sub_msg,
            "errmsg": exc.message,
            "request_id": ids.request_id(),
        }
    body: dict[str, Any] = {"errcode": exc.errcode, "errmsg": exc.message}
    if family == "topapi":
        body["request_id"] = ids.request_id()
    return body


def media_type(family: str) -> str:
    """gettoken and /service answer plain `application/json`; topapi adds the charset (spec §2.2)."""
    return "application/json" if family == "token" else JSON_UTF8


def error(exc: errors.DingboxError, *, family: str) -> Response:
    return json_response(error_body(exc, family=family), media_type=media_type(family))
