"""The node over HTTP: raw JSON-RPC 2.0 with urllib, and web3's HTTPProvider."""
from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from databright.chain.node import EmbeddedNode, HttpPolicy, serve

DAPP = "http://localhost:3000"


@pytest.fixture
def url(node: EmbeddedNode) -> Iterator[str]:
    server = serve(node, policy=HttpPolicy.build(cors_origins=[DAPP]))
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()


def post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert "Access-Control-Allow-Origin" not in response.headers  # no origin on the list
        return json.loads(response.read())


def rpc(url: str, method: str, params: Any = None, req_id: Any = 1) -> Any:
    body = {"jsonrpc": "2.0", "id": req_id, "method": method}
    if params is not None:
        body["params"] = params
    return post(url, json.dumps(body).encode())


def test_single_call(url: str, node: EmbeddedNode) -> None:
    assert rpc(url, "eth_chainId", []) == {"jsonrpc": "2.0", "id": 1,
                                           "result": hex(node.chain_id)}
    assert rpc(url, "eth_blockNumber", req_id="abc")["result"] == "0x0"
    assert rpc(url, "net_listening")["result"] is True


def test_batch(url: str) -> None:
    body = json.dumps([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "no_such_method", "params": []},
        {"jsonrpc": "2.0", "method": "eth_chainId", "params": []},  # notification
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance",
         "params": ["0x" + "00" * 20, "latest"]},
    ]).encode()
    responses = post(url, body)
    assert [r["id"] for r in responses] == [1, 2, 3]
    assert responses[0]["result"] == "0x0"
    assert responses[1]["error"]["code"] == -32601
    assert responses[2]["result"] == "0x0"
    assert post(url, b"[]")["error"]["code"] == -32600


def test_errors(url: str) -> None:
    assert rpc(url, "eth_fooBar", [])["error"]["code"] == -32601
    malformed = post(url, b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert malformed["error"]["code"] == -32700 and malformed["id"] is None
    assert rpc(url, "eth_getBalance", ["not-an-address"])["error"]["code"] == -32602
    assert rpc(url, "eth_getBalance", ["0x" + "00" * 20, "latest", 1, 2])["error"]["code"] == (
        -32602)
    assert rpc(url, "eth_getBalance", {"a": 1})["error"]["code"] == -32602
    assert post(url, b'"hello"')["error"]["code"] == -32600
    failing = rpc(url, "eth_sendRawTransaction", ["0x1234"])["error"]
    assert failing["code"] in (-32602, -32000)
    assert rpc(url, "eth_getBalance", ["0x" + "00" * 20, "0x99"])["error"]["code"] == -32000


def test_keep_alive_and_cors_preflight(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(3):  # three requests, one connection
        conn.request("POST", "/", body=b'{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}',
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert json.loads(response.read())["id"] == 7
    conn.request("OPTIONS", "/", headers={"Origin": DAPP, "Access-Control-Request-Method": "POST"})
    response = conn.getresponse()
    response.read()
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == DAPP
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    conn.close()


def test_web3_over_http(url: str, accounts: list[Any], sign_transfer: Any) -> None:
    w3 = Web3(Web3.HTTPProvider(url))
    assert w3.is_connected()
    tx_hash = w3.eth.send_raw_transaction(sign_transfer(accounts[2], 0, value=123))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt.status == 1
    assert w3.eth.get_balance("0x" + "22" * 20) == 123
    block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
    assert block.transactions[0]["hash"] == tx_hash


def test_split_writer_errors_locks_and_exit(node: EmbeddedNode, genesis: Any, url: str,
                                            accounts: list[Any], sign_transfer: Any,
                                            tmp_path: Any) -> None:
    """serve() forks the writer: the front end rejects what the writer would, the
    chain stays locked to this node, and the writer exits with it."""
    from databright.chain.node import ChainError
    from databright.chain._split import RemoteLedger

    ledger = node.ledger
    assert isinstance(ledger, RemoteLedger)
    first = sign_transfer(accounts[1], 0)
    tx_hash = rpc(url, "eth_sendRawTransaction", ["0x" + first.hex()])["result"]
    # web3-style pending nonce right after a send: the writer saw the send first
    assert rpc(url, "eth_getTransactionCount", [accounts[1].address, "pending"])["result"] == "0x1"
    again = rpc(url, "eth_sendRawTransaction", ["0x" + first.hex()])
    assert "error" in again  # already known, or (once mined) nonce too low
    receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])["result"]
    assert receipt is not None and receipt["status"] == "0x1"
    stale = rpc(url, "eth_sendRawTransaction", ["0x" + sign_transfer(accounts[1], 0, value=2).hex()])
    assert "nonce too low" in stale["error"]["message"]
    poor = rpc(url, "eth_sendRawTransaction",
               ["0x" + sign_transfer(accounts[1], 1, value=10**30).hex()])
    assert "insufficient funds" in poor["error"]["message"]
    with pytest.raises(ChainError, match="in use"):
        EmbeddedNode(node.path, genesis)
    process = ledger._process
    assert process.is_alive()
    node.close()
    assert not process.is_alive()
