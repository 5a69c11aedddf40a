"""HTTP plumbing shared by the wire adapters: bounded body reads and fast JSON responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dingbox import errors

JSON_UTF8 = "application/json;charset=UTF-8"


def json_response(
    content: Any,
    status_code: int = 200,
    media_type: str = JSON_UTF8,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(orjson.dumps(content), status_code, headers, media_type=media_type)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it passes `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.BodyTooLarge()
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # lets request.form() and request.json() reuse what was read
    return body
