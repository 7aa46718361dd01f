"""What every request passes before the app sees it: a known Host, a bounded body; and the headers every answer carries.

One pure ASGI middleware, so the checks hold for every route, page or API:

- **Host allow-list.** A page that DNS-rebinds ``attacker.example`` to
  127.0.0.1 would otherwise talk to the dashboard with the user's cookie; a
  request whose ``Host`` is not one of ours gets 400 before any route runs.
- **Body limit on the bytes received.** ``Content-Length`` is only a claim
  (chunked bodies have none), so the limit counts what arrives and stops the
  read past it; a claim above the limit is refused before reading.
- **JSON nesting.** py-evm raises Python's recursion limit so far that a JSON
  body nested a hundred thousand levels deep overflows the C stack while it is
  parsed and kills the process instead of raising; a JSON body is scanned as it
  arrives and refused past :data:`MAX_JSON_DEPTH` levels.
- **Security headers.** A strict Content-Security-Policy (scripts and styles
  from this origin only, no framing), ``X-Frame-Options: DENY`` for older
  browsers, no MIME sniffing, no referrer to other origins, a separate
  browsing context group, and no access to powerful features.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from databright.web.deps import UploadTooLarge

__all__ = ["DEFAULT_HOSTS", "MAX_JSON_DEPTH", "SecurityMiddleware", "host_of"]

#: Deepest nesting of arrays and objects a JSON body may have; the API's bodies need three.
MAX_JSON_DEPTH = 64

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "[::1]")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# The API's interactive docs are FastAPI's Swagger UI: its assets come from a CDN and it starts with an
# inline script. It holds no form of ours, and it may not be framed either.
_DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
             "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
             "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
]


def host_of(header: str) -> tuple[str, str | None]:
    """``(host, port)`` of a Host header: ``[::1]:8000`` → ``("[::1]", "8000")``; lower-cased."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1:]
        return value[: end + 1], rest[1:] if rest.startswith(":") else None
    host, sep, port = value.rpartition(":")
    return (host, port) if sep and ":" not in host else (value, None)


class SecurityMiddleware:
    """Host allow-list, a streamed body limit and security headers, around the whole app."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str], max_body_bytes: int) -> None:
        self.app = app
        # An entry without a port allows every port of that host; "host:port" allows just that one.
        self.allowed = {host_of(h) for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes

    def _host_allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        host, port = host_of(headers.get(b"host", b"").decode("latin-1"))
        return (host, None) in self.allowed or (host, port) in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        headers = _HEADERS + [(b"content-security-policy", (_DOCS_CSP if path == "/api/v1/docs" else CSP).encode())]

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        if not self._host_allowed(scope):
            await _plain_error(send_secured, 400, "unknown Host header: this server answers only for its own "
                                                  "addresses (see serve --allowed-host)", path)
            return
        body = _LimitedBody(scope, receive, self.max_body_bytes)
        started = False

        async def send_checked(message: Message) -> None:
            # Past the limit, whatever the app answers (FastAPI turns a failed body read into a 400) is
            # replaced by the 413 that says why.
            nonlocal started
            if body.exceeded:
                if not started:
                    started = True
                    await _plain_error(send_secured, body.status, body.message, path)
                return
            started = started or message["type"] == "http.response.start"
            await send_secured(message)

        try:
            await self.app(scope, body.receive, send_checked)
        except UploadTooLarge:
            if started:
                raise
            await send_checked({"type": "http.response.start"})


class _LimitedBody:
    """A ``receive`` that refuses a body (declared or streamed) longer than ``limit`` bytes, or JSON nested
    deeper than :data:`MAX_JSON_DEPTH`."""

    def __init__(self, scope: Scope, receive: Receive, limit: int) -> None:
        self._receive = receive
        headers = dict(scope.get("headers") or [])
        self._declared = headers.get(b"content-length")
        # FastAPI parses a body as JSON when its type says so, or when it has no type at all.
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        self._nesting = _Nesting() if not kind or kind.endswith((b"/json", b"+json")) else None
        self._limit = limit
        self._seen = 0
        self.exceeded = False
        self.status = 413
        self.message = f"the request body is larger than the limit of {limit / 2**20:g} MiB"

    async def receive(self) -> Message:
        if self._declared is not None and (not self._declared.isdigit() or int(self._declared) > self._limit):
            self.exceeded = True
        else:
            message = await self._receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                self._seen += len(chunk)
                self.exceeded = self._seen > self._limit
                if not self.exceeded and self._nesting is not None and self._nesting.feed(chunk) > MAX_JSON_DEPTH:
                    self.exceeded, self.status = True, 400
                    self.message = f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
            if not self.exceeded:
                return message
        raise UploadTooLarge(self.message)


_JSON_TOKENS = re.compile(rb'["\\\[\]{}]')


class _Nesting:
    """How deep the brackets of a JSON text go outside its strings, fed a chunk at a time."""

    def __init__(self) -> None:
        self.depth = self.deepest = 0
        self._in_string = False
        self._escaped_at = -1  # the offset, in the next chunk's terms, of the byte a backslash escapes

    def feed(self, chunk: bytes) -> int:
        for match in _JSON_TOKENS.finditer(chunk):
            at = match.start()
            if at == self._escaped_at:
                continue
            token = chunk[at]
            if self._in_string:
                if token == 0x5C:  # backslash
                    self._escaped_at = at + 1
                elif token == 0x22:
                    self._in_string = False
            elif token == 0x22:
                self._in_string = True
            elif token in b"[{":
                self.depth += 1
                self.deepest = max(self.deepest, self.depth)
            elif token in b"]}":
                self.depth -= 1
        self._escaped_at = 0 if self._escaped_at == len(chunk) else -1
        return self.deepest


async def _plain_error(send: Any, status: int, message: str, path: str) -> None:
    """The app's error shape without the app: JSON under /api/, a bare page elsewhere."""
    if path.startswith("/api/"):
        body, kind = json.dumps({"error": message}).encode(), b"application/json"
    else:
        page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error {status} · DataBright'
                f'</title><link rel="stylesheet" href="/static/style.css"></head><body><main><section class="card">'
                f'<h1>Error {status}</h1><p>{html.escape(message)}</p><p><a href="/">Back to the datasets</a></p>'
                f'</section></main></body></html>')
        body, kind = page.encode(), b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
