"""Browser sessions kept on the server: the cookie carries a random id only.

A signed cookie that holds the session itself stays valid wherever it is
copied, even after sign-out. Here the cookie is a random id (signed with the
home's secret, so a forged one is refused without a lookup) and the session's
contents live in memory, keyed by that id. Signing in gives a new id; signing
out drops the old one, so a cookie copied before is worth nothing. The store is
bounded (least recently used first out) and sessions expire after ``max_age``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SessionStore", "ServerSessionMiddleware"]

COOKIE = "databright_session"


class SessionStore:
    """Session contents by id, bounded and expiring; ``on_drop`` hears of every session that ends."""

    def __init__(self, *, max_sessions: int = 20_000, max_age: float = 7 * 24 * 3600,
                 on_drop: Callable[[str], None] | None = None) -> None:
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_sessions = max_sessions
        self.max_age = max_age
        self.on_drop = on_drop

    def get(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._data.get(sid)
            if entry is None:
                return None
            fresh = time.monotonic() - entry[0] <= self.max_age
            if fresh:
                self._data[sid] = (time.monotonic(), entry[1])
                self._data.move_to_end(sid)
            else:
                self._data.pop(sid)
        if not fresh:
            self._dropped(sid)
            return None
        return entry[1]

    def put(self, sid: str, data: dict[str, Any]) -> None:
        evicted: list[str] = []
        with self._lock:
            self._data[sid] = (time.monotonic(), data)
            self._data.move_to_end(sid)
            while len(self._data) > self.max_sessions:
                evicted.append(self._data.popitem(last=False)[0])
        for old in evicted:
            self._dropped(old)

    def drop(self, sid: str) -> None:
        with self._lock:
            found = self._data.pop(sid, None) is not None
        if found:
            self._dropped(sid)

    def _dropped(self, sid: str) -> None:
        if self.on_drop:
            self.on_drop(sid)

    def __len__(self) -> int:
        return len(self._data)


class ServerSessionMiddleware:
    """Sets ``scope["session"]`` to the server-side dict of the cookie's id; the id is ``session["sid"]``.

    A route that changes ``session["sid"]`` (sign-in, sign-out) moves the
    session to the new id: the old one is dropped and the cookie rewritten.
    """

    def __init__(self, app: ASGIApp, *, store: SessionStore, secret: str, max_age: int) -> None:
        self.app = app
        self.store = store
        self.key = hashlib.sha256(b"databright session id\0" + secret.encode()).digest()
        self.max_age = max_age

    def _sign(self, sid: str) -> str:
        return f"{sid}.{hmac.new(self.key, sid.encode(), hashlib.sha256).hexdigest()[:32]}"

    def _unsign(self, value: str) -> str | None:
        sid, _, _mac = value.rpartition(".")
        return sid if sid and hmac.compare_digest(self._sign(sid), value) else None

    def _cookie_sid(self, scope: Scope) -> str | None:
        raw = dict(scope.get("headers") or []).get(b"cookie")
        if not raw:
            return None
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(raw.decode("latin-1"))
        except Exception:  # noqa: BLE001 - a malformed Cookie header is just no session
            return None
        morsel = cookie.get(COOKIE)
        return self._unsign(morsel.value) if morsel else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        old = self._cookie_sid(scope)
        data = self.store.get(old) if old else None
        scope["session"] = data if data is not None else {}
        secure = scope.get("scheme") == "https"
        # A cross-site request never carries the SameSite cookie on a POST: a session cookie
        # set in its answer would replace the visitor's own and sign them out. It gets none.
        cross_site = dict(scope.get("headers") or []).get(b"sec-fetch-site") == b"cross-site"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: dict[str, Any] = scope["session"]
                sid = session.get("sid")
                if sid and (sid != old or data is None) and not cross_site:
                    if old and old != sid:
                        self.store.drop(old)
                    self.store.put(str(sid), session)
                    flags = f"Path=/; Max-Age={self.max_age}; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
                    header = f"{COOKIE}={self._sign(str(sid))}; {flags}".encode("latin-1")
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", header)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
