"""oapi request parsing (spec §2.1): the body encodings merged with the query string.

Parameters arrive as JSON with native types, JSON with every scalar stringified (the Java SDK), a
form body whose nested values are JSON text (DingTalk's curl samples), or in the query string; the
body wins over the query. A body that cannot be read in its encoding is `40035 不合法的参数 json`
(JSON, the default when the type is missing or unknown, or JSON nesting deeper than
`JSON_MAX_DEPTH`) or `40035 不合法的参数 body` (a form).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.formparsers import MultiPartException
from starlette.requests import Request

from dingbox import errors
from dingbox.params import Params, load_json
from dingbox.protocols.http import header, query


async def read_params(request: Request, body: bytes) -> Params:
    """Merge the query string and the body; pull out `access_token` (query or form body)."""
    values: dict[str, Any] = query(request.scope)
    token = values.pop("access_token", None)
    content_type = (header(request.scope, b"content-type") or "").split(";")[0].strip().lower()
    body_values: Mapping[str, Any] = {}
    if body.strip():
        if content_type == "application/x-www-form-urlencoded" and not _looks_like_json(body):
            try:
                form_values = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise errors.InvalidParameter("body") from None
            token = token or form_values.pop("access_token", None)
            body_values = form_values
        elif content_type == "multipart/form-data":
            try:
                form = await request.form()
            except (MultiPartException, ValueError):
                raise errors.InvalidParameter("body") from None
            multipart_values = {k: v for k, v in form.items() if isinstance(v, str)}
            token = token or multipart_values.pop("access_token", None)
            body_values = multipart_values
        else:
            # JSON is the default: clients often omit or misstate the content type
            try:
                parsed = load_json(body)
            except ValueError:
                raise errors.InvalidParameter("json") from None
            if not isinstance(parsed, dict):
                raise errors.InvalidParameter("json")
            body_values = parsed
    values.update(body_values)
    values.pop("access_token", None)  # never kept with the request, wherever it came
    return Params(values=values, token=token or None)


def _looks_like_json(body: bytes) -> bool:
    """curl's -d without -H labels a JSON body as a form; take it for the JSON it is."""
    return body.lstrip()[:1] == b"{"
