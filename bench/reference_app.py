"""The accept-path reference: a bare Starlette endpoint on the same uvicorn, doing only what any
handler must (read the JSON body, answer JSON), so the ratio isolates what dingbox adds."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def endpoint(request: Request) -> Response:
    body = orjson.loads(await request.body())
    payload = {"errcode": 0, "errmsg": "ok", "task_id": len(body), "request_id": "abcdefghijklm"}
    return Response(orjson.dumps(payload), media_type="application/json;charset=UTF-8")


app = Starlette(routes=[Route("/topapi/message/corpconversation/asyncsend_v2", endpoint, methods=["POST"])])
