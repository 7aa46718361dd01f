"""Hostile input against a served node: random JSON-RPC and malformed HTTP.

Whatever arrives, the node answers it or closes the connection within a timeout,
stays up, and afterwards still mines; nothing in the fuzzing moves its head.
The node runs without ``--dev``: no request may move its clock or mine.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests._servers import rpc
from tests.conformance._harness import CHAIN_ID, ServedNode, wait_receipt

pytestmark = pytest.mark.slow

ANSWER_TIMEOUT_S = 10.0
METHODS = [
    "eth_chainId", "eth_blockNumber", "eth_getBalance", "eth_getCode", "eth_getStorageAt",
    "eth_getTransactionCount", "eth_call", "eth_estimateGas", "eth_sendRawTransaction",
    "eth_getTransactionReceipt", "eth_getTransactionByHash", "eth_getBlockByNumber", "eth_getBlockByHash",
    "eth_getBlockReceipts", "eth_getLogs", "eth_newFilter", "eth_newBlockFilter", "eth_getFilterChanges",
    "eth_getFilterLogs", "eth_uninstallFilter", "eth_feeHistory", "eth_gasPrice", "eth_maxPriorityFeePerGas",
    "eth_getBlockTransactionCountByNumber", "eth_createAccessList", "eth_getProof", "net_version",
    "web3_clientVersion", "web3_sha3", "eth_syncing",
]
DEV_METHODS = ["evm_mine", "evm_increaseTime", "evm_setNextBlockTimestamp"]
FIELDS = ["from", "to", "data", "input", "value", "gas", "gasPrice", "blockHash", "blockNumber", "fromBlock",
          "toBlock", "address", "topics", "accessList", "maxFeePerGas", "nonce"]


def _hex(n: int) -> str:
    return hex(n) if n >= 0 else "-" + hex(-n)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**300), 2**300), st.floats(allow_nan=False), st.text(max_size=12),
    st.integers(0, 2**300).map(_hex), st.binary(max_size=40).map(lambda b: "0x" + b.hex()),
    st.sampled_from(["latest", "pending", "earliest", "safe", "0x", "0xzz", "0x" + "ff" * 32, "0x" + "00" * 20]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"method": st.sampled_from(METHODS) | st.text(max_size=20)},
    optional={"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "id": st.integers(-(2**70), 2**70) | st.text(max_size=6) | st.none(),
              "params": st.lists(json_values, max_size=5) | json_values},
)
payloads = requests | st.lists(requests | json_values, max_size=6) | json_values


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    served = ServedNode(tmp_path_factory.mktemp("hostile") / "home").start(dev=False)
    yield served
    served.kill()


def _exchange(node: ServedNode, data: bytes, half_close: bool) -> bytes:
    """Send raw bytes; return what came back before the server closed or went quiet.
    With ``half_close`` the client then shuts its side (a server may take that as a
    disconnect and answer nothing; it must not wait on it)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.port), timeout=ANSWER_TIMEOUT_S) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)  # the client is done: the server must not wait on it
        except OSError:  # the server already closed the connection: an allowed answer
            pass
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no answer and no close within {ANSWER_TIMEOUT_S}s for {data[:200]!r}") from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
            assert time.monotonic() - started < ANSWER_TIMEOUT_S, f"answer to {data[:200]!r} never ended"
    return received


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False


def _post(body: bytes, content_type: str = "application/json") -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type.encode()
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def _json_body(response: bytes) -> Any:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), response[:200]
    return json.loads(body) if body.strip() else None


def _check_answer(payload: Any, answer: Any) -> list[int]:
    """Structural checks on a JSON-RPC answer; returns the error codes it holds."""
    items = answer if isinstance(answer, list) else [answer]
    codes = []
    for item in items:
        if item is None:
            continue
        assert isinstance(item, dict) and item.get("jsonrpc") == "2.0", (payload, answer)
        assert ("result" in item) != ("error" in item), (payload, answer)
        if "error" in item:
            assert isinstance(item["error"].get("code"), int) and isinstance(item["error"].get("message"), str)
            codes.append(item["error"]["code"])
    return codes


internal_errors: list[tuple[Any, Any]] = []
not_http: list[tuple[bytes, bytes]] = []


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(payload=payloads)
# Known shapes of bad input first: a slot above 2**256, a value above the balance, a
# gas cap below the intrinsic gas.
@example(payload={"jsonrpc": "2.0", "id": 1, "method": "eth_getStorageAt",
                  "params": ["0x" + "00" * 20, hex(2**256), "latest"]})
@example(payload={"jsonrpc": "2.0", "id": 2, "method": "eth_call",
                  "params": [{"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": hex(10**40)}, "latest"]})
@example(payload={"jsonrpc": "2.0", "id": 3, "method": "eth_estimateGas",
                  "params": [{"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "gas": hex(20_000)}]})
def test_random_json_rpc_is_answered(node: ServedNode, payload: Any) -> None:
    body = json.dumps(payload).encode()
    answer = _json_body(_exchange(node, _post(body), half_close=False))
    if -32603 in _check_answer(payload, answer):
        internal_errors.append((payload, answer))
    assert node.alive(), f"the node died on {body[:300]!r}"


request_lines = st.sampled_from([
    b"POST / HTTP/1.1", b"POST /rpc/../.. HTTP/1.1", b"GET / HTTP/1.1", b"PUT / HTTP/1.1", b"POST / HTTP/1.0",
    b"POST / HTTP/9.9", b"POST /", b"\x00\xff\xfe", b"POST " + b"/a" * 5000 + b" HTTP/1.1", b"", b"BREW / HTCPCP/1.0",
]) | st.binary(max_size=60)
lengths = st.sampled_from(["-1", "abc", "100000000000", "0", "18446744073709551616", " 5", "5, 5", "0x10"]) | st.integers(0, 400).map(str)
headers = st.lists(st.sampled_from([
    b"Host: 127.0.0.1", b"Host: evil.example", b"Content-Type: application/json", b"Content-Type: text/plain",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked", b"Expect: 100-continue", b"Origin: http://evil.example",
    b"Connection: keep-alive", b"X-Long: " + b"x" * 20000, b"no colon here", b": empty name", b"Content-Encoding: gzip",
]) | st.binary(max_size=40).filter(lambda b: b"\r\n" not in b), max_size=6)
bodies = st.sampled_from([
    b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}', b'[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}]',
    b"5\r\n{\"a\":\r\n0\r\n\r\n", b"ffffffffffff\r\nabc", b"zz\r\n", b'{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{',
    b"\x00" * 100, b"[" * 5000,
]) | st.binary(max_size=300)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(line=request_lines, extra=headers, length=st.none() | lengths, body=bodies, half_close=st.booleans())
def test_malformed_http_is_answered_or_closed(node: ServedNode, line: bytes, extra: list[bytes], length: str | None,
                                             body: bytes, half_close: bool) -> None:
    head = [line, *extra]
    if length is not None:
        head.append(b"Content-Length: " + length.encode())
    data = b"\r\n".join(head) + b"\r\n\r\n" + body
    response = _exchange(node, data, half_close=half_close)
    if response and not response.startswith(b"HTTP/1."):
        not_http.append((data[:300], response[:200]))
    assert node.alive(), f"the node died on {data[:300]!r}"


def test_malformed_http_gets_http_answers() -> None:
    """Whatever the request, an answer is an HTTP/1.x response (a 4xx), never a bare
    page without a status line. (Checks what the fuzzing above collected.)"""
    assert not not_http, f"{len(not_http)} answers without a status line, e.g. {not_http[:3]}"


@pytest.mark.parametrize("depth", [100, 10_000, 70_000, 1_000_000])
def test_deep_nesting_is_refused(node: ServedNode, depth: int) -> None:
    for body in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        answer = _exchange(node, _post(body), half_close=False)
        assert node.alive(), f"the node died on a body nested {depth} deep"
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]


def test_no_internal_errors_for_bad_input() -> None:
    """-32603 means the node failed, not the request: bad params get -32602, or the
    code geth uses. (Runs after the fuzzing above, on what it collected.)"""
    assert not internal_errors, f"{len(internal_errors)} internal errors, e.g. {internal_errors[:3]}"


def test_dev_methods_need_the_dev_flag(node: ServedNode) -> None:
    """Started without --dev, the node refuses to mine on request or move its clock."""
    head = rpc(node.url, "eth_blockNumber")
    stamp = rpc(node.url, "eth_getBlockByNumber", ["latest", False])["timestamp"]
    for method, params in [("evm_mine", []), ("evm_increaseTime", [hex(30 * 86400)]),
                           ("evm_setNextBlockTimestamp", [hex(2**40)])]:
        reply = _json_body(_exchange(node, _post(json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()), half_close=False))
        assert reply.get("error", {}).get("code") == -32601, (method, reply)
    assert rpc(node.url, "eth_blockNumber") == head
    assert rpc(node.url, "eth_getBlockByNumber", ["latest", False])["timestamp"] == stamp


def test_still_mines_and_head_unmoved(node: ServedNode) -> None:
    """After all of the above, the head moved only by the one valid transaction sent now."""
    assert node.alive()
    head = int(rpc(node.url, "eth_blockNumber"), 16)
    key = node.keys[0]
    account = Account.from_key(key)
    nonce = int(rpc(node.url, "eth_getTransactionCount", [account.address, "latest"]), 16)
    raw = account.sign_transaction({"to": "0x" + "22" * 20, "value": 1, "nonce": nonce, "chainId": CHAIN_ID,
                                    "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}).raw_transaction
    tx_hash = rpc(node.url, "eth_sendRawTransaction", ["0x" + bytes(raw).hex()])
    receipt = wait_receipt(node.url, tx_hash)
    assert receipt["status"] == "0x1"
    assert int(receipt["blockNumber"], 16) == head + 1 == int(rpc(node.url, "eth_blockNumber"), 16)
    assert nonce == 0, "nothing in the fuzzing may have sent a transaction"
