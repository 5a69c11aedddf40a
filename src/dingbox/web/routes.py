"""The web UI under /ui/ (a placeholder listing corps until the inbox UI lands)."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, Router

from dingbox.services.container import Services

_PAGE = (Path(__file__).parent / "templates" / "placeholder.html").read_text(encoding="utf-8")


def build(services: Services) -> Router:
    async def index(request: Request) -> Response:
        corps = "".join(
            f"<li>{html.escape(cid)}: {html.escape(name)}</li>"
            for cid, name in sorted(services.runtime.directory.corps.items())
        )
        return HTMLResponse(_PAGE.replace("{corps}", corps))

    return Router(routes=[Route("/ui/", index)])
