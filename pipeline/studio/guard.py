"""Who may use the studio: a per-launch token, the Host the request names and the Origin it
comes from (the scheme Jupyter's server uses).

- **Token.** Each launch draws a random token (:func:`new_token`); the address the studio
  prints carries it (``/?token=…``). A request with the right token in its query sets a cookie
  (``HttpOnly``, ``SameSite=Strict``, one per port), so the page's own requests carry it from
  then on; scripts send it as the ``X-Studio-Token`` header. Every request but the page's
  static files needs it.
- **Host.** Bound to a loopback address, the studio answers only requests whose ``Host`` is
  ``localhost`` or a loopback address (a DNS-rebinding page names its own host). Bound to
  another address, any ``Host`` is answered, still only with the token.
- **Origin.** A request that changes something (any method but ``GET``/``HEAD``/``OPTIONS``)
  sent by a browser names its ``Origin``: it must be the studio's own (same scheme, host and
  port) or one given with ``--allow-origin``.

A refused request is answered ``403 {"error": "…"}`` before any route runs.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from ..errors import UsageError

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

TOKEN_HEADER = "x-studio-token"
"""The header a script sends the token in."""
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
"""Methods that change nothing (no Origin check)."""
PUBLIC = "/static/"
"""Paths under this prefix (the page's script, style sheet) are served without the token."""


def new_token() -> str:
    """A fresh random token (32 URL-safe characters, 192 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name, an IPv4 or IPv6 address, brackets allowed) is this machine
    only: ``localhost``, ``127.0.0.0/8``, ``::1`` in any spelling, ``::ffff:127.x.x.x``."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def origin_of(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of an origin or URL (port ``None`` when it is the scheme's
    default), or ``None`` when it is no ``http(s)://host`` origin (``null``, garbage)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    return parts.scheme, parts.hostname.rstrip("."), None if port == default else port


def allowed_origins(origins: tuple[str, ...]) -> tuple[tuple[str, str, int | None], ...]:
    """``--allow-origin`` values as origins.

    Raises:
        UsageError: (``--allow-origin``) a value that is no ``http(s)://host[:port]``.
    """
    parsed = []
    for origin in origins:
        found = origin_of(origin)
        if found is None:
            raise UsageError(
                f"--allow-origin {origin!r}: use an origin like http://studio.example:8765"
            )
        parsed.append(found)
    return tuple(parsed)


@dataclass(frozen=True)
class Guard:
    """The rules of one launch.

    Attributes:
        token: the launch's token.
        bind: the address the server listens on (loopback: the Host check is on).
        origins: further origins allowed (``--allow-origin``), parsed by :func:`origin_of`;
            their hosts are allowed as ``Host`` too.
    """

    token: str
    bind: str = "127.0.0.1"
    origins: tuple[tuple[str, str, int | None], ...] = ()

    def host_problem(self, host: str) -> str | None:
        """Why a request naming ``Host: host`` is refused, or ``None``."""
        named = origin_of(f"http://{host}")
        if named is None:
            return f"Host {host!r} is no host name"
        if not is_loopback(self.bind) or is_loopback(named[1]):
            return None
        if named[1] in {o[1] for o in self.origins}:
            return None
        return f"Host {named[1]!r} is not this studio's (it answers on this machine only)"

    def origin_problem(self, origin: str, scheme: str, host: str) -> str | None:
        """Why a state-changing request from ``origin`` to ``scheme://host`` is refused."""
        found = origin_of(origin)
        if found is not None and found in (origin_of(f"{scheme}://{host}"), *self.origins):
            return None
        return f"requests from {origin[:100]!r} may not change the studio (another site)"

    def token_matches(self, given: str | None) -> bool:
        """Whether ``given`` is the launch's token (compared in constant time)."""
        if not given:
            return False
        return secrets.compare_digest(given.encode("utf-8", "replace"), self.token.encode())


def cookie_name(scope: Scope) -> str:
    """The token's cookie, one per port (cookies do not tell ports apart)."""
    server = scope.get("server") or ("", 0)
    return f"stylecascade-studio-{server[1]}"


class GuardMiddleware:
    """ASGI middleware that applies a :class:`Guard` to every HTTP request.

    Args:
        app: the application behind it.
        guard: the launch's rules.
    """

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Answer 403 to a refused request; pass the others on (setting the cookie when the
        token came in the query)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        problem = self.problem(connection)
        if problem is not None:
            await JSONResponse({"error": problem}, status_code=403)(scope, receive, send)
            return
        name = cookie_name(scope)
        query = connection.query_params.get("token")
        if self.guard.token_matches(query) and connection.cookies.get(name) != query:
            send = self._setting_cookie(send, name)
        await self.app(scope, receive, send)

    def problem(self, connection: HTTPConnection) -> str | None:
        """Why the request is refused (Host, then Origin, then token), or ``None``."""
        host = connection.headers.get("host", "")
        refused = self.guard.host_problem(host)
        if refused is None and connection.scope["method"] not in SAFE_METHODS:
            origin = connection.headers.get("origin")
            if origin is not None:
                refused = self.guard.origin_problem(origin, connection.scope["scheme"], host)
        if refused is not None or connection.scope["path"].startswith(PUBLIC):
            return refused
        given = (
            connection.headers.get(TOKEN_HEADER)
            or connection.query_params.get("token")
            or connection.cookies.get(cookie_name(connection.scope))
        )
        if not self.guard.token_matches(given):
            return "no valid studio token: open the address the studio printed (with ?token=…)"
        return None

    def _setting_cookie(self, send: Any, name: str) -> Any:
        """``send`` that adds the token's cookie to the response's headers."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[name] = self.guard.token
        cookie[name].update({"path": "/", "httponly": True, "samesite": "Strict"})
        value = cookie[name].OutputString()

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", value)
            await send(message)

        return sending
