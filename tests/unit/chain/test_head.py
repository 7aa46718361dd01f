"""``RpcHead`` reads over plain JSON-RPC what ``Ledger`` reads through web3; ``encode_call`` is the ABI's encoding."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract

from databright.chain import Ledger, RpcHead
from databright.chain._head import call_uint, encode_call
from databright.chain.node import EmbeddedNode, serve
from databright.errors import ChainError, TransactionError
from tests._servers import free_port


def test_rpc_head_answers_as_the_ledger(node: EmbeddedNode, w3: Web3, counter: Contract) -> None:
    w3.eth.wait_for_transaction_receipt(counter.functions.increment(3).transact())
    ledger = Ledger(w3)
    server = serve(node)
    try:
        head = RpcHead(f"http://127.0.0.1:{server.port}")
        assert head.chain_id == ledger.chain_id
        top = head.block_number()
        assert top == ledger.block_number() >= 2
        for number in (-1, 0, 1, top, top + 1):
            assert head.block_hash(number) == ledger.block_hash(number)
        assert head.block_hash(top + 1) is None and len(head.block_hash(top) or "") == 64
        assert head.latest_timestamp() == ledger.latest_timestamp()
        assert head.code(counter.address) == ledger.code(counter.address) != b""
        assert head.code("0x" + "77" * 20) == b""
        assert call_uint(head, counter.address, "count()") == 8 == call_uint(ledger, counter.address, "count()")
        zero = encode_call("increment(uint256)", 0)
        for reader in (head, ledger):
            with pytest.raises(TransactionError, match="counter: zero amount"):
                reader.call(counter.address, zero)
        with pytest.raises(ChainError, match="returned 0 bytes, not one uint256"):
            call_uint(head, "0x" + "77" * 20, "count()")
    finally:
        server.shutdown()


def test_an_unreachable_node_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainError, match=f"^cannot reach the node at {url}: "):
        RpcHead(url, timeout=5).block_number()
    with pytest.raises(ChainError, match="starts with http:// or https://"):
        RpcHead("file:///etc/hostname")


def test_encode_call_is_the_abi_encoding() -> None:
    signature = "f(uint256,address,bool,uint8)"
    args = (2**256 - 1, "0x" + "aB" * 20, True, 255)
    assert encode_call(signature, *args) == function_signature_to_4byte_selector(signature) + encode(
        ["uint256", "address", "bool", "uint8"], list(args))
    assert encode_call("count()") == function_signature_to_4byte_selector("count()")
    for bad in [("f(uint256)", -1), ("f(uint8)", 256), ("f(uint256)", True), ("f(address)", "0x12"),
                ("f(bool)", 1), ("f(string)", "x"), ("f(uint256)",), ("not a signature", 1)]:
        with pytest.raises(ValueError):
            encode_call(*bad)  # type: ignore[arg-type]
