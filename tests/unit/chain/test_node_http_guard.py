"""What the HTTP front end refuses before the dispatcher sees it: foreign hosts and
origins, development methods without --dev, deep nesting, bad framing, overload."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from databright.chain import _http
from databright.chain.node import EmbeddedNode, Genesis, HttpPolicy, RpcServer, serve

SRC = Path(__file__).resolve().parents[3] / "src"
CHAIN_ID = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'


def _serve(node: EmbeddedNode, **policy: Any) -> Iterator[RpcServer]:
    server = serve(node, policy=HttpPolicy.build(**policy))
    yield server
    server.shutdown()


@pytest.fixture
def server(node: EmbeddedNode) -> Iterator[RpcServer]:
    yield from _serve(node)


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes (from a thread: the server may answer before it has read
    them all, and close), read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        def send_all() -> None:
            with contextlib.suppress(OSError):  # refused mid-body: the reply says why
                sock.sendall(data)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                break
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk
    raise AssertionError(f"connection still open after {timeout}s; got {out[:200]!r}")


def post(port: int, body: bytes = CHAIN_ID, headers: str = "", host: str = "localhost",
         content_type: str | None = "application/json") -> tuple[int, dict[str, str], bytes]:
    head = f"POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        head += f"Content-Length: {len(body)}\r\n"
    return parse(exchange(port, (head + headers + "\r\n").encode() + body))


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


# -- Host and Origin ---------------------------------------------------------------


def test_foreign_host_names_are_refused(node: EmbeddedNode) -> None:
    for server in _serve(node, allowed_hosts=["node.internal"]):
        port = server.port
        assert post(port, host="attacker.example")[0] == 403
        assert post(port, host="attacker.example:8545")[0] == 403
        for host in ("localhost", "localhost:8545", "LOCALHOST", "127.0.0.1", "127.0.0.1:9",
                     "[::1]:8545", "node.internal:80"):
            status, _, body = post(port, host=host)
            assert status == 200 and json.loads(body)["result"], host


def test_cors_is_granted_only_to_listed_origins(node: EmbeddedNode) -> None:
    for server in _serve(node, cors_origins=["http://127.0.0.1:8000"]):
        status, headers, body = post(server.port, headers="Origin: http://evil.example\r\n")
        assert "access-control-allow-origin" not in headers
        preflight = (b"OPTIONS / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     b"Origin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n")
        assert "access-control-allow-origin" not in parse(exchange(server.port, preflight))[1]
        _, headers, _ = post(server.port, headers="Origin: http://127.0.0.1:8000\r\n")
        assert headers["access-control-allow-origin"] == "http://127.0.0.1:8000"


def test_posts_need_a_json_content_type(server: RpcServer) -> None:
    assert post(server.port, content_type="text/plain")[0] == 415
    assert post(server.port, content_type="application/x-www-form-urlencoded")[0] == 415
    assert post(server.port, content_type=None)[0] == 415
    assert post(server.port, content_type="application/json; charset=utf-8")[0] == 200


# -- development methods -------------------------------------------------------------


def test_clock_moves_only_with_dev(node: EmbeddedNode) -> None:
    travel = b'{"jsonrpc":"2.0","id":1,"method":"evm_increaseTime","params":[2592000]}'
    for server in _serve(node):
        error = json.loads(post(server.port, travel)[2])["error"]
        assert error["code"] == -32601 and "--dev" in error["message"]
        mine = json.loads(post(server.port, b'{"jsonrpc":"2.0","id":2,"method":"evm_mine"}')[2])
        assert mine["error"]["code"] == -32601
    assert node.ledger.head().block_number == 0
    # the process's own code (in-process calls) keeps them
    assert node.handle("evm_increaseTime", [5]) == "0x5"


def test_clock_moves_with_dev(node: EmbeddedNode) -> None:
    travel = b'{"jsonrpc":"2.0","id":1,"method":"evm_increaseTime","params":[60]}'
    for server in _serve(node, dev=True):
        assert json.loads(post(server.port, travel)[2])["result"] == "0x3c"
        assert "result" in json.loads(post(server.port, b'{"jsonrpc":"2.0","id":2,"method":"evm_mine"}')[2])
        assert node.ledger.head().block_number == 1


# -- framing and size ------------------------------------------------------------------


def test_malformed_framing_gets_400(server: RpcServer) -> None:
    for length in ("-1", "abc", "1e3", "12, 13"):
        status, _, _ = post(server.port, headers=f"Content-Length: {length}\r\n")
        assert status == 400, length


def test_oversize_gets_413_without_reading_it(server: RpcServer) -> None:
    start = time.monotonic()
    assert post(server.port, b"", headers="Content-Length: 100000000000\r\n")[0] == 413
    assert post(server.port, b"[" * (6 << 20))[0] == 413
    chunk = b"x" * (1 << 20)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    assert post(server.port, chunked, headers="Transfer-Encoding: chunked\r\n")[0] == 413
    assert time.monotonic() - start < 10


def test_chunked_bodies_are_accepted(server: RpcServer) -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (CHAIN_ID[:10], CHAIN_ID[10:]))
    status, _, reply = post(server.port, body + b"0\r\n\r\n", headers="Transfer-Encoding: chunked\r\n")
    assert status == 200 and json.loads(reply)["result"] == hex(node_chain_id(server))


def node_chain_id(server: RpcServer) -> int:
    return int(server.dispatcher.ledger.chain_id)


def test_batches_are_limited(server: RpcServer) -> None:
    call = {"jsonrpc": "2.0", "method": "eth_chainId", "params": []}
    ok = json.loads(post(server.port, json.dumps([{**call, "id": i} for i in range(1000)]).encode())[2])
    assert len(ok) == 1000
    big = json.loads(post(server.port, json.dumps([{**call, "id": i} for i in range(1001)]).encode())[2])
    assert big == [{"jsonrpc": "2.0", "id": 0, "error": {"code": -32600, "message": "batch too large"}}]


def test_overload_answers_503_at_once(server: RpcServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "MAX_IN_FLIGHT", 2)
    handle = server.dispatcher.handle_payload
    monkeypatch.setattr(server.dispatcher, "handle_payload",
                        lambda payload: time.sleep(1.0) or handle(payload))  # slow calls
    answers: list[tuple[int, float, bytes]] = []

    def call() -> None:
        start = time.monotonic()
        status, _, body = post(server.port)
        answers.append((status, time.monotonic() - start, body))

    callers = [threading.Thread(target=call) for _ in range(6)]
    for caller in callers:
        caller.start()
        time.sleep(0.05)  # the first two take the slots
    for caller in callers:
        caller.join(timeout=30)
    assert sorted(status for status, _, _ in answers) == [200, 200, 503, 503, 503, 503]
    for status, elapsed, body in answers:
        if status == 503:
            assert elapsed < 0.9 and json.loads(body)["error"]["code"] == -32005  # at once
        else:
            assert json.loads(body)["result"]


def test_a_stuck_call_times_out_and_frees_its_slot(server: RpcServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "CALL_TIMEOUT_S", 0.2)
    handle = server.dispatcher.handle_payload
    monkeypatch.setattr(server.dispatcher, "handle_payload",
                        lambda payload: time.sleep(1.0) or handle(payload))  # a writer that stalls
    status, _, body = post(server.port)
    assert status == 200 and json.loads(body)["error"] == {"code": -32002, "message": "request timed out"}
    assert server.app.in_flight == 1  # its thread still runs: the slot stays taken
    time.sleep(1.2)
    assert server.app.in_flight == 0


def test_headers_must_arrive_in_time(server: RpcServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "HEADER_TIMEOUT_S", 0.5)
    request = (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(CHAIN_ID), CHAIN_ID))
    for kept_alive in (False, True):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            if kept_alive:  # one whole request first, then a slow one on the same connection
                sock.sendall(request)
                assert b'"result"' in _read_response(sock)
                time.sleep(0.8)  # idle longer than the header deadline: that is keep-alive's business
                sock.sendall(request)
                assert b'"result"' in _read_response(sock)
            start = time.monotonic()
            for byte in request[:30]:  # a byte at a time, never finished
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.1)
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed by the server
            assert time.monotonic() - start < 5


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1 << 16)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(parse(head + b"\r\n\r\n")[1]["content-length"])
    while len(body) < length:
        body += sock.recv(1 << 16)
    return body


def test_keep_alive_answers_are_not_held_back(server: RpcServer) -> None:
    """Headers and body leave in two writes: without TCP_NODELAY a delayed ACK
    held every body back ~40 ms."""
    request = (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(CHAIN_ID), CHAIN_ID))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            sock.sendall(request)
            _read_response(sock)
            times.append(time.perf_counter() - start)
    assert sorted(times)[len(times) // 2] < 0.025


# -- nesting ------------------------------------------------------------------------------


def test_nesting_is_measured_outside_strings() -> None:
    assert not _http.nesting_exceeds(b'{"a": [[1]]}', 3)
    assert _http.nesting_exceeds(b'{"a": [[[1]]]}', 3)
    assert not _http.nesting_exceeds(b'["[[[[[[", "{{{{{{{", "\\"[[[["]', 3)
    assert _http.nesting_exceeds(b"[" * 70_000, 128)
    start = time.monotonic()  # linear even for a hostile mix of quotes and escapes
    assert not _http.nesting_exceeds(b'"' + b'\\"' * 2_000_000, 128)
    assert not _http.nesting_exceeds(b'"\\' * 1_000_000 + b"[" * 200, 128)
    assert time.monotonic() - start < 5


def test_deep_nesting_does_not_crash_the_served_node(tmp_path: Path, genesis: Genesis,
                                                     accounts: list[Any], sign_transfer: Any) -> None:
    """140 KB nested 70,000 deep used to overflow the handler thread's stack (SIGSEGV)."""
    genesis_path = tmp_path / "genesis.json"
    genesis.save(genesis_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "databright.chain.node", str(tmp_path / "chain.sqlite"),
                             str(genesis_path), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        port = int(url.rsplit(":", 1)[1])
        for deep in (b"[" * 70_000 + b"]" * 70_000, b'{"a":' * 70_000, b"[" * 70_000):
            status, _, body = post(port, deep)
            assert status == 200 and json.loads(body)["error"]["code"] == -32600
        assert proc.poll() is None
        tx = "0x" + sign_transfer(accounts[0], 0).hex()
        sent = _rpc(url, "eth_sendRawTransaction", [tx])
        for _ in range(100):
            receipt = _rpc(url, "eth_getTransactionReceipt", [sent])
            if receipt is not None:
                break
        assert receipt is not None and receipt["status"] == "0x1"
    finally:
        proc.kill()
        proc.wait()


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["result"]
