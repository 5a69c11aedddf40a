"""The application factory: open the store, build the services, route each request to its surface.

Routing is by prefix, cheapest first: `/v1.0/` → v1.0 adapter, `/router/rest` → TOP gateway,
`/api/v1` → dingbox API, `/ui/` → web UI, `/metrics`, and everything else → oapi (whose adapter
answers DingTalk's unknown-path envelopes).
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Router

from dingbox.api import routes as api_routes
from dingbox.api.origin import LocalOrigin
from dingbox.api.routes import ApiError, api_error
from dingbox.dispatch.worker import Dispatcher
from dingbox.metrics import Metrics
from dingbox.protocols.http import ClientGone
from dingbox.protocols.oapi import routes as oapi
from dingbox.protocols.top import gateway as top
from dingbox.protocols.v1 import routes as v1
from dingbox.runtime import Runtime
from dingbox.services.container import Services
from dingbox.settings import Settings
from dingbox.store import Store, StoreError, claim_sql, open_store, task_sql
from dingbox.web import routes as web_routes

log = logging.getLogger("dingbox")


class DingboxApp:
    """The ASGI application; `services` and `runtime` are there for embedding and tests."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.runtime = Runtime(settings, store)
        self.services = Services.build(self.runtime)
        self.dispatcher = Dispatcher(self.runtime, settings.dispatchers)
        self.runtime.dead_dispatch_loops = lambda: self.dispatcher.dead_loops
        self.services.notifications.dispatcher = self.dispatcher
        self._api: Router = api_routes.build(self.services)
        self._web: Router = web_routes.build(self.services)
        self._starlette = Starlette(routes=[], lifespan=self._lifespan)
        self._origin = LocalOrigin(settings.host, settings.allowed_host)
        self.metrics = Metrics()

    @asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        self.runtime.start()
        self.dispatcher.start()
        try:
            yield
        finally:
            await self.dispatcher.stop()
            await self.runtime.stop()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._starlette(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self._route(request, scope, receive, send)
        except ClientGone:  # routine for a server (clients time out, users press stop): no traceback
            log.debug(
                "%s %s: the client left before its request body arrived", scope["method"], scope["path"]
            )
            return
        if response is not None:
            await response(scope, receive, send)

    async def _route(self, request: Request, scope: Any, receive: Any, send: Any) -> Response | None:
        path: str = scope["path"]
        count = self.metrics.count
        if path.startswith("/v1.0/"):
            count("v1")
            return await v1.handle(request, self.services)
        if path == "/router/rest":
            count("top")
            return await top.handle(request, self.services)
        if path.startswith("/api/v1"):
            count("api")
            return await self._guarded(
                self._api, request, scope, receive, send, exempt=path == "/api/v1/health"
            )
        if path == "/ui" or path.startswith("/ui/"):
            count("ui")
            if path == "/ui":
                return RedirectResponse("/ui/", status_code=308)
            return await self._guarded(self._web, request, scope, receive, send, exempt=False)
        if path == "/metrics" and request.method == "GET":
            count("other")
            totals = await self.runtime.store.read(task_sql.task_totals)
            return PlainTextResponse(
                self.metrics.render(totals, self.runtime.events.subscribers, self.runtime.store.describe()),
                media_type="text/plain; version=0.0.4",
            )
        if path == "/" and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            count("other")
            return RedirectResponse("/ui/", status_code=302)
        count("oapi")
        return await oapi.handle(request, self.services)

    async def _guarded(
        self, router: Router, request: Request, scope: Any, receive: Any, send: Any, *, exempt: bool
    ) -> Response | None:
        refused = self._origin.refusal(scope, check_host=not exempt)
        if refused is not None:
            return api_error(ApiError(403, *refused))
        if not exempt and not self._authorized(request):
            return Response(
                '{"error":{"code":"unauthorized","message":"this dingbox is protected by --auth"}}',
                401,
                {"www-authenticate": 'Bearer realm="dingbox", Basic realm="dingbox"'},
                media_type="application/json",
            )
        scope["app"] = self._starlette  # so the router raises HTTPException for 404/405, rendered below
        try:
            await router(scope, receive, send)
        except ApiError as exc:
            return api_error(exc)
        except StoreError:  # logged once by the store
            return api_error(ApiError(503, "store_unavailable", "the store cannot be used right now"))
        except HTTPException as exc:
            code = (
                "not_found"
                if exc.status_code == 404
                else "method_not_allowed"
                if exc.status_code == 405
                else "error"
            )
            return api_error(ApiError(exc.status_code, code, str(exc.detail), exc.headers))  # 405 keeps Allow
        return None

    def _authorized(self, request: Request) -> bool:
        """Compared as bytes (the header's raw bytes, the secret's UTF-8): `hmac.compare_digest`
        refuses str beyond ASCII, and a client may send any byte."""
        secret = self.runtime.settings.auth
        if not secret:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode("latin-1"), secret.encode())
        if scheme.lower() == "basic":
            try:
                _, _, password = base64.b64decode(value.strip(), validate=True).partition(b":")
            except ValueError:
                return False
            return hmac.compare_digest(password, secret.encode())
        return False


def create_app(settings: Settings, store: Store | None = None) -> DingboxApp:
    """Open the store (migrating it), release claims of a dead process, load the in-memory caches."""
    store = store or open_store(settings.db, synchronous=settings.synchronous)
    if not store.shared:
        store.write_sync(claim_sql.release_claims)  # this process owns the store: no claim is alive
    app = DingboxApp(settings, store)
    app.runtime.refresh_sync()
    return app
