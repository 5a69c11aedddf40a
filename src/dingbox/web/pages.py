"""Page rendering shared by the UI's routes and its live streams: the template environment, the
security headers every page carries, and the CSRF token its forms send back."""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import datetime
from typing import Any

from jinja2 import Template
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dingbox.clock import SHANGHAI, parse_iso
from dingbox.web import render

CSRF_COOKIE = "dingbox_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"

# Pages run only our own script and style files. Style attributes stay allowed: message colours
# (OA heads, status bars, <font color>) are inline styles whose values the renderer validated.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline';"
    " img-src 'self' data:{remote}; connect-src 'self'; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'"
)

env = render.templates


def short_time(value: str | None) -> str:
    """An ISO time as DingTalk lists show it: the time today, else the date and time."""
    if not value:
        return ""
    when = datetime.fromtimestamp(parse_iso(value), SHANGHAI)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def epoch_time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def json_pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False)


env.filters["short_time"] = short_time
env.filters["json"] = json_pretty
env.filters["ts"] = epoch_time
env.globals["message_html"] = render.message_html
env.globals["summary"] = render.plain_summary


def template(name: str) -> Template:
    return env.get_template(name)


def macro(name: str, **kwargs: Any) -> str:
    """One macro of partials.html rendered on its own (what live streams send)."""
    module = env.get_template("partials.html").make_module()
    return str(getattr(module, name)(**kwargs))


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's token (from its cookie) and whether the cookie must be set with this page."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(32), True


def csrf_ok(request: Request, sent: str | None) -> bool:
    """A state-changing UI request must echo the cookie's token: a cross-site page can make the
    browser send the cookie (if SameSite let it) but can never read it to echo it."""
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and sent) and hmac.compare_digest(str(cookie), str(sent))


def page(
    request: Request, name: str, status_code: int = 200, *, remote_images: bool = False, **context: Any
) -> HTMLResponse:
    token, fresh = csrf_token(request)
    body = template(name).render(request=request, csrf=token, remote_images=remote_images, **context)
    response = HTMLResponse(body, status_code, headers=security_headers(remote_images))
    if fresh:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui/")
    return response


def security_headers(remote_images: bool = False) -> dict[str, str]:
    return {
        "content-security-policy": _CSP.format(remote=" https: http:" if remote_images else ""),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "cache-control": "no-store",
    }
