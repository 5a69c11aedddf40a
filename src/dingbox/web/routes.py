"""The web UI under /ui/: server-rendered pages, one same-origin POST to read a message, live streams.

GET never changes anything: a message becomes read only through `POST /ui/messages/{id}/read`
carrying the page's CSRF token (the page's script sends it when the message is opened).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from dingbox.domain.directory import Directory
from dingbox.params import MAX_INT64
from dingbox.services.container import Services
from dingbox.services.inbox import MessageRecalled, UnknownUser
from dingbox.services.ui import Chat
from dingbox.web import live
from dingbox.web.pages import CSRF_FIELD, CSRF_HEADER, csrf_ok, page, security_headers

PAGE_SIZE = 30
MSGTYPE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _int(raw: str | None) -> int | None:
    if raw is None or not raw.isascii() or not raw.isdigit() or int(raw) > MAX_INT64:
        return None
    return int(raw)


def _remote_images(request: Request) -> bool:
    return request.query_params.get("images") == "1"


def not_found(request: Request, message: str) -> Response:
    return page(request, "error.html", 404, status=404, message=message)


def build(services: Services) -> Router:
    ui = services.ui

    def directory() -> Directory:
        return services.runtime.directory  # replaced whenever the org loads

    def corp_name(corp_id: str | None) -> str:
        return directory().corps.get(corp_id or "", corp_id or "")

    async def home(request: Request) -> Response:
        corps = await services.org.overview(with_secrets=False)
        users = {c["corp_id"]: await ui.users(c["corp_id"]) for c in corps}
        tasks = await ui.recent_tasks()
        return page(request, "home.html", corps=corps, users=users, tasks=tasks)

    async def inbox(request: Request) -> Response:
        corp_id, userid = request.path_params["corp_id"], request.path_params["userid"]
        if corp_id not in directory().corps:
            return not_found(request, f"No corp {corp_id}.")
        chat_arg = request.query_params.get("chat")
        chat = Chat.parse(chat_arg) if chat_arg else None
        before = _int(request.query_params.get("before"))
        try:
            inbox_page = await ui.inbox(corp_id, userid, chat, before=before, limit=PAGE_SIZE)
        except UnknownUser:
            return not_found(request, f"{corp_id} has no user {userid}.")
        query = {k: v for k, v in request.query_params.items() if k not in ("before", "images")}
        remote = _remote_images(request)
        return page(
            request,
            "inbox.html",
            remote_images=remote,
            page=inbox_page,
            ui=ui,
            newest_id=max((m["id"] for m in inbox_page.messages), default=0),
            older_page=before is not None,
            older_query=urlencode(
                {**query, "before": inbox_page.next_before, **({"images": 1} if remote else {})}
            ),
            query_with_images=urlencode({**query, "images": 1}),
            query_without_images=urlencode(query),
        )

    async def message(request: Request) -> Response:
        message_id = _int(request.path_params["message_id"])
        found = await services.inbox.message(message_id) if message_id is not None else None
        if found is None:
            return not_found(request, "No such message.")
        return page(
            request,
            "message_page.html",
            remote_images=_remote_images(request),
            m=found,
            ui=ui,
            corp_name=corp_name(found["corp_id"]),
        )

    async def read(request: Request) -> Response:
        """Mark read for the page's script (JSON) or its no-script form (redirect back)."""
        sent = request.headers.get(CSRF_HEADER)
        is_form = sent is None
        if is_form:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not csrf_ok(request, sent):
            return JSONResponse(
                {"error": {"code": "csrf", "message": "missing or wrong CSRF token; reload the page"}},
                403,
                headers=security_headers(),
            )
        message_id = _int(request.path_params["message_id"])
        try:
            found = await services.inbox.mark_read(message_id) if message_id is not None else None
        except MessageRecalled:
            return JSONResponse(
                {"error": {"code": "message_recalled", "message": "the message was recalled by its sender"}},
                409,
                headers=security_headers(),
            )
        if found is None:
            return JSONResponse({"error": {"code": "not_found", "message": "no such message"}}, 404)
        if is_form:
            return RedirectResponse(f"/ui/messages/{found['id']}", 303)
        return JSONResponse({"id": found["id"], "read": found["read"], "read_at": found["read_at"]})

    async def task(request: Request) -> Response:
        task_id = _int(request.path_params["task_id"])
        outcome = request.query_params.get("outcome") or None
        reason = request.query_params.get("reason") or None
        found = (
            await ui.task(
                task_id,
                outcome=outcome,
                reason=reason,
                cursor=_int(request.query_params.get("cursor")) or 0,
                limit=1000,
            )
            if task_id is not None
            else None
        )
        if found is None:
            return not_found(request, "No such task.")
        return page(
            request,
            "task.html",
            t=found,
            outcome=outcome,
            reason=reason,
            corp_name=corp_name(found["corp_id"]),
        )

    async def quota(request: Request) -> Response:
        corp_id = request.path_params["corp_id"]
        q = await ui.quota(corp_id, _int(request.query_params.get("agent_id")))
        if q is None:
            return not_found(request, f"No app in corp {corp_id}.")
        return page(request, "quota.html", q=q, corp_name=corp_name(corp_id))

    async def org(request: Request) -> Response:
        found = await ui.org(request.path_params["corp_id"])
        if found is None:
            return not_found(request, "No such corp.")
        return page(request, "org.html", org=found)

    async def search(request: Request) -> Response:
        q = request.query_params
        f = {
            k: (q.get(k) or "").strip() or None
            for k in ("q", "corp_id", "sender", "msgtype", "day", "userid")
        }
        error = None
        results = []
        if f["msgtype"] and not set(f["msgtype"]) <= MSGTYPE_CHARS:
            error = "msgtype: letters, digits and _ only"
        else:
            try:
                results = await ui.search(
                    corp_id=f["corp_id"],
                    text=f["q"],
                    sender=f["sender"],
                    msgtype=f["msgtype"],
                    day=f["day"],
                    userid=f["userid"],
                )
            except ValueError:
                error = "day: give a date as YYYY-MM-DD"
        corps = sorted(directory().corps.items())
        return page(request, "search.html", f=f, results=results, corps=corps, ui=ui, error=error, limit=100)

    static = StaticFiles(directory=Path(__file__).parent / "static")
    routes: list[BaseRoute] = [
        Route("/ui/", home, methods=["GET"]),
        Route("/ui/search", search, methods=["GET"]),
        Route("/ui/corps/{corp_id}/users/{userid}", inbox, methods=["GET"]),
        Route("/ui/corps/{corp_id}/quota", quota, methods=["GET"]),
        Route("/ui/corps/{corp_id}/org", org, methods=["GET"]),
        Route("/ui/messages/{message_id}", message, methods=["GET"]),
        Route("/ui/messages/{message_id}/read", read, methods=["POST"]),
        Route("/ui/tasks/{task_id}", task, methods=["GET"]),
        *live.routes(services),
        Mount("/ui/static", static),
    ]
    return Router(routes=routes)
