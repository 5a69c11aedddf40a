"""Local-origin safety for /api/v1 and /ui/ (DESIGN §5): a dingbox on a developer's laptop is reachable
from every web page the developer opens, so two kinds of browser request are refused with 403.

- DNS rebinding: a page on a name the attacker controls re-points that name at 127.0.0.1 and reads
  or drives dingbox as "same origin". The browser still sends the attacker's name in `Host`, so only
  loopback names, the bound address and names given with `--allowed-host` are served. When dingbox
  listens on a wildcard address (0.0.0.0, ::), any IP address literal is served too: those are the
  machine's own addresses, and a page can only send an address literal as `Host` if it was loaded
  from that very address.
- Cross-site request forgery: a state-changing request (POST, PUT, PATCH, DELETE) whose `Origin` is
  not the request's own scheme, host and port, or whose `Sec-Fetch-Site` is `cross-site` or
  `same-site` (another port or subdomain of the same host is another web application), is refused.
  A request with neither header is served: curl, SDKs and test suites send none.

DingTalk surfaces (oapi, v1.0, TOP, webhooks) are not checked: DingTalk answers any origin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from dingbox.protocols.http import header

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_name(host_and_port: str) -> str:
    """The host of a `Host` header value (or a bare name), lower case, without brackets or port."""
    value = host_and_port.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.partition(":")[0].rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(name: str) -> bool:
    """localhost, any name under .localhost (RFC 6761 keeps them on this machine), 127.x or ::1."""
    name = host_name(name)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


def _origin_tuple(scheme: str, host_and_port: str) -> tuple[str, str, int | None]:
    scheme = scheme.lower()
    value = host_and_port.strip().lower()
    port_text = value.rpartition("]")[2] if value.startswith("[") else value
    port: int | None = _DEFAULT_PORTS.get(scheme)
    if port_text.count(":") == 1:
        digits = port_text.rpartition(":")[2]
        port = int(digits) if digits.isascii() and digits.isdigit() else -1
    return scheme, host_name(value), port


class LocalOrigin:
    """Decides whether a request to /api/v1 or /ui/ came from this dingbox's own origin."""

    def __init__(self, bound_host: str, allowed_hosts: Iterable[str]) -> None:
        bound = host_name(bound_host)
        self._any_address = bound in _WILDCARDS
        self._names = {bound, *(host_name(name) for name in allowed_hosts)} - {""}

    def refusal(self, scope: Mapping[str, Any], *, check_host: bool = True) -> tuple[str, str] | None:
        """None to serve the request, else (error code, message) for a 403."""
        host = header(scope, b"host")
        if check_host and host is not None and not self._host_allowed(host_name(host)):
            return (
                "forbidden_host",
                f"Host {host!r} is not a name of this dingbox; use localhost or its address, "
                "or start it with --allowed-host NAME",
            )
        if scope["method"] not in STATE_CHANGING:
            return None
        site = header(scope, b"sec-fetch-site")
        if site is not None and site.strip().lower() in ("cross-site", "same-site"):
            return "forbidden_origin", f"{scope['method']} from another site (Sec-Fetch-Site: {site}) refused"
        origin = header(scope, b"origin")
        if origin is not None and not self._same_origin(origin, scope["scheme"], host):
            return "forbidden_origin", f"{scope['method']} from origin {origin!r} refused: not this dingbox's"
        return None

    def _host_allowed(self, name: str) -> bool:
        if name in self._names or is_loopback(name):
            return True
        return self._any_address and _ip(name) is not None

    @staticmethod
    def _same_origin(origin: str, scheme: str, host: str | None) -> bool:
        origin_scheme, sep, rest = origin.strip().partition("://")
        if not sep or host is None or "/" in rest:  # "null" (sandboxed or file: pages) is nobody's
            return False
        return _origin_tuple(origin_scheme, rest) == _origin_tuple(scheme, host)
