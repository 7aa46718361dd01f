"""The node's JSON-RPC front end over HTTP: uvicorn (h11) serving a small ASGI app.

What a request has to get through before the dispatcher sees it, in order:

* the ``Host`` header: an IP literal, or a name on the allow-list (``localhost``
  by default), as geth's ``--http.vhosts``; a page on a rebound DNS name gets 403;
* ``POST`` with a JSON ``Content-Type`` (geth's three), else 415; ``GET`` is a
  health check, ``OPTIONS`` a CORS preflight;
* CORS is granted only to origins on the allow-list (none by default), so a
  web page cannot read our answers, and cannot send a JSON body without a
  preflight it fails;
* the body: at most 5 MiB (geth's limit; 413), read within a deadline (408);
  chunked bodies are accepted within the same limit;
* nesting at most ``MAX_DEPTH`` deep, checked on the raw bytes before
  ``json.loads`` recurses (a 70,000-deep body would overflow a thread's stack);
* batches of at most 1,000 calls (geth's default).

The dispatcher blocks (SQLite, the writer's pipe), so calls run on a bounded
thread pool; past ``MAX_IN_FLIGHT`` waiting requests the answer is 503 with
JSON-RPC error -32005 at once, never a hang; a call still running after 30 s
is answered -32002 "request timed out" (geth's), its slot freed when it ends.
A request's headers must be complete within ``HEADER_TIMEOUT_S`` of connecting
(or of its first byte on a kept-alive connection), so trickling connections are
closed instead of holding a slot.
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from databright.errors import ChainError

from ._rpc import Dispatcher

__all__ = ["HttpPolicy", "RpcServer", "nesting_exceeds"]

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 128
MAX_BATCH = 1000
MAX_IN_FLIGHT = 256
MAX_CONNECTIONS = 1024
WORKERS = 32
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0  # geth's HTTP write timeout
KEEP_ALIVE_S = 30.0
_JSON_TYPES = frozenset({"application/json", "application/json-rpc", "application/jsonrequest"})
LIMIT_EXCEEDED = -32005
TIMED_OUT = -32002  # geth's code for "request timed out"
INVALID_REQUEST = -32600

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class HttpPolicy:
    """Who may use the node over HTTP: CORS origins, Host names, development methods."""

    cors_origins: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset({"localhost"})
    dev: bool = False

    @classmethod
    def build(cls, cors_origins: Iterable[str] = (), allowed_hosts: Iterable[str] = (),
              dev: bool = False) -> HttpPolicy:
        return cls(frozenset(o.strip().rstrip("/").lower() for o in cors_origins),
                   frozenset({"localhost", *(h.strip().lower() for h in allowed_hosts)}), dev)

    def host_allowed(self, host: str | None) -> bool:
        if not host or "*" in self.allowed_hosts:
            return True
        name = _host_name(host)
        if name is None:
            return False
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name in self.allowed_hosts
        return True  # DNS rebinding needs a name; an address cannot be rebound

    def cors_grant(self, origin: str | None) -> str | None:
        if origin is None:
            return None
        if "*" in self.cors_origins:
            return "*"
        return origin if origin.lower() in self.cors_origins else None


def _host_name(host: str) -> str | None:
    """``example.org:8545`` -> ``example.org``; ``[::1]:8545`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else None
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".")


# A string (an unterminated one runs to the end, so the scan stays linear) or a bracket.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)


def nesting_exceeds(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays/objects in ``body`` nest deeper than ``limit``, ignoring
    brackets inside strings; decided without parsing, in linear time."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(body):
        char = body[match.start()]
        if char in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif char in b"]}":
            depth -= 1
    return False


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    close: bool = False
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _rpc_error(code: int, message: str, req_id: Any = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": req_id,
                       "error": {"code": code, "message": message}}).encode()


class _App:
    """The ASGI application: the checks above, then the dispatcher on the pool."""

    def __init__(self, dispatcher: Dispatcher, policy: HttpPolicy) -> None:
        self.dispatcher = dispatcher
        self.policy = policy
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="databright-rpc")
        self.in_flight = 0  # touched on the event loop's thread only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        origin = headers.get(b"origin")
        grant = self.policy.cors_grant(origin.decode("latin-1") if origin is not None else None)
        reply = await self._handle(scope, headers, receive)
        if grant is not None:
            reply.headers += [(b"access-control-allow-origin", grant.encode("latin-1")),
                              (b"vary", b"Origin")]
        await _send(send, reply)

    async def _handle(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive) -> _Reply:
        host = headers.get(b"host")
        if not self.policy.host_allowed(None if host is None else host.decode("latin-1")):
            return _Reply(403, b"invalid host specified\n", close=True)
        method = scope["method"]
        if method == "OPTIONS":
            return _Reply(204, headers=[
                (b"access-control-allow-methods", b"POST, GET, OPTIONS"),
                (b"access-control-allow-headers", b"Content-Type, Authorization"),
                (b"access-control-max-age", b"86400")])
        if method in ("GET", "HEAD"):
            return _Reply(200, json.dumps({"client": self.dispatcher.client_version}).encode())
        if method != "POST":
            return _Reply(405, b"method not allowed\n", close=True)
        declared = headers.get(b"content-length")
        if declared is not None and int(declared) > MAX_BODY_BYTES:  # h11 checked the digits
            return _Reply(413, f"content length too large ({int(declared)}>{MAX_BODY_BYTES})\n"
                          .encode(), close=True)
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type.decode("latin-1") not in _JSON_TYPES:
            return _Reply(415, b"invalid content type, only application/json is supported\n",
                          close=True)
        try:
            body = await asyncio.wait_for(_read_body(receive), BODY_TIMEOUT_S)
        except _BodyTooLarge:
            return _Reply(413, f"request body too large (>{MAX_BODY_BYTES})\n".encode(), close=True)
        except TimeoutError:
            return _Reply(408, b"request body not received in time\n", close=True)
        except _Disconnected:
            return _Reply(400, b"", close=True)
        if self.in_flight >= MAX_IN_FLIGHT:
            return _Reply(503, _rpc_error(LIMIT_EXCEEDED, "node is busy; retry later"))
        self.in_flight += 1
        work = asyncio.get_running_loop().run_in_executor(self.pool, self._dispatch, body)
        work.add_done_callback(self._finished)  # the slot is taken until the thread is done
        try:
            answer = await asyncio.wait_for(asyncio.shield(work), CALL_TIMEOUT_S)
        except TimeoutError:
            return _Reply(200, _rpc_error(TIMED_OUT, "request timed out"))
        return _Reply(200, answer)

    def _finished(self, _work: object) -> None:
        self.in_flight -= 1

    def _dispatch(self, body: bytes) -> bytes:
        if nesting_exceeds(body):
            return _rpc_error(INVALID_REQUEST, f"request nested deeper than {MAX_DEPTH} levels")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _rpc_error(-32700, f"parse error: {exc}")
        if isinstance(payload, list) and len(payload) > MAX_BATCH:
            first = payload[0].get("id") if isinstance(payload[0], dict) else None
            return b"[" + _rpc_error(INVALID_REQUEST, "batch too large", first) + b"]"
        try:
            response = self.dispatcher.handle_payload(payload)
            return b"" if response is None else json.dumps(response).encode()
        except Exception as exc:  # noqa: BLE001 - a bug answers -32603, it does not drop the request
            return _rpc_error(-32603, f"internal error: {exc!r}")


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, reply: _Reply) -> None:
    headers = [(b"content-type", b"application/json" if reply.status in (200, 503)
                else b"text/plain; charset=utf-8"),
               (b"content-length", str(len(reply.body)).encode()), *reply.headers]
    if reply.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


@functools.cache
def _protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with our additions; built on first use, so importing
    this module (the CLI does) does not import uvicorn."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _Protocol(H11Protocol):
        """uvicorn's h11 protocol plus a deadline for a request's headers.

        uvicorn's keep-alive timer stops at a request's first byte, so a client
        trickling a header a byte at a time would hold its connection for hours;
        this deadline runs from the connection, or from the first byte of the next
        request on a kept-alive one, until the request's headers are complete.
        """

        _deadline: asyncio.TimerHandle | None = None
        _armed_for: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # No Nagle: uvicorn writes headers and body separately, and a delayed
                # ACK would hold the body back ~40 ms on every keep-alive request.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._arm()

        def data_received(self, data: bytes) -> None:
            idle = self.cycle is None or self.cycle.response_complete
            if idle and self._deadline is None:
                self._arm()  # the next request starts: its headers get the deadline
            super().data_received(data)
            if self._deadline is not None and self.cycle is not self._armed_for:
                self._disarm()  # a request's headers arrived

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._armed_for = self.cycle
            self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.cycle is self._armed_for and not self.transport.is_closing():
                self.transport.close()

    return _Protocol


class RpcServer:
    """JSON-RPC over HTTP on a background thread; ``.port``, ``.url``, ``.shutdown()``."""

    def __init__(self, dispatcher: Dispatcher, host: str, port: int,
                 policy: HttpPolicy | None = None) -> None:
        import uvicorn  # here, not at import time: the CLI starts faster without it

        self.dispatcher = dispatcher
        self.policy = policy or HttpPolicy()
        self.app = _App(dispatcher, self.policy)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise ChainError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{self.port}"
        config = uvicorn.Config(
            self.app, http=_protocol_class(), ws="none", lifespan="off", loop="asyncio",
            log_config=None, log_level="error", access_log=False, proxy_headers=False,
            server_header=False, limit_concurrency=MAX_CONNECTIONS, backlog=2048,
            timeout_keep_alive=int(KEEP_ALIVE_S), timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="databright-http", daemon=True)

    def start(self) -> RpcServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.shutdown()
                raise ChainError(f"the JSON-RPC server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def shutdown(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.app.pool.shutdown(wait=False, cancel_futures=True)
        self._sock.close()
