"""eth_call, eth_estimateGas and eth_createAccessList: context, every call field, errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from databright.chain.node import EmbeddedNode, RpcError

from .conftest import CHAIN_ID, Artifact, compile_fixture


@pytest.fixture(scope="module")
def context_artifact() -> Artifact:
    return compile_fixture("context")


@pytest.fixture
def probe(w3: Web3, context_artifact: Artifact, deploy: Any) -> Contract:
    contract: Contract = deploy(w3, context_artifact)
    return contract


def _context(node: EmbeddedNode, probe: Contract, tag: Any, **fields: Any) -> tuple[Any, ...]:
    data = probe.functions.context()._encode_transaction_data()
    out = node.handle("eth_call", [{"to": probe.address, "input": data, **fields}, tag])
    return tuple(abi_decode(["uint256", "uint256", "uint256", "address", "bytes32", "uint256"],
                            bytes.fromhex(out[2:])))


def test_a_call_runs_in_the_block_it_names(w3: Web3, node: EmbeddedNode, probe: Contract,
                                           counter: Contract,
                                           accounts: list[LocalAccount]) -> None:
    """Latest, a past number and a hash: that block's state and header context
    (geth); pending: the next block. Unpriced calls see a base fee of 0, priced
    ones the block's own (geth's NoBaseFee)."""
    for amount in (1, 2):
        w3.eth.wait_for_transaction_receipt(counter.functions.increment(amount).transact())
    head = w3.eth.get_block("latest")
    past = w3.eth.get_block(head.number - 1)
    for tag, block in (("latest", head), (hex(past.number), past),
                       ({"blockHash": past.hash.to_0x_hex()}, past)):
        number, timestamp, fee, coinbase, randao, gas_limit = _context(node, probe, tag)
        assert (number, timestamp, gas_limit) == (block.number, block.timestamp, block.gasLimit)
        assert coinbase.lower() == block.miner.lower() and randao == bytes(block.mixHash)
        assert fee == 0
        priced = _context(node, probe, tag, maxFeePerGas=hex(10**10), gas=hex(100_000),
                          **{"from": accounts[0].address})
        assert priced[2] == block.baseFeePerGas
    pending = _context(node, probe, "pending")
    assert pending[0] == head.number + 1 and pending[1] > head.timestamp
    # state at the named block: the counter's storage as it was then
    count = counter.functions.count()
    assert count.call(block_identifier=past.number) == count.call() - 2


def _rpc_error(node: EmbeddedNode, method: str, params: list[Any]) -> RpcError:
    with pytest.raises(RpcError) as err:
        node.handle(method, params)
    return err.value


@pytest.mark.parametrize("method", ["eth_call", "eth_estimateGas", "eth_createAccessList"])
def test_user_errors_have_geth_codes(node: EmbeddedNode, accounts: list[LocalAccount],
                                     method: str) -> None:
    """What a client gets wrong is never -32603 "internal error"."""
    rich, poor = accounts[0].address, "0x" + "77" * 20
    to = "0x" + "22" * 20
    too_much = _rpc_error(node, method, [{"from": poor, "to": to, "value": hex(1)}, "latest"])
    assert too_much.code == -32000
    assert too_much.message.startswith(("insufficient funds for gas * price + value",
                                        "insufficient funds for transfer"))
    low = _rpc_error(node, method, [{"from": rich, "to": to, "gas": hex(20_000)}, "latest"])
    assert (low.code, low.message) == (-32000, "intrinsic gas too low: have 20000, want 21000")
    tip = _rpc_error(node, method, [{"from": rich, "to": to, "maxFeePerGas": hex(10**9),
                                     "maxPriorityFeePerGas": hex(2 * 10**9)}, "latest"])
    assert tip.code == -32000
    assert tip.message.startswith("max priority fee per gas higher than max fee per gas")
    for bad in ({"to": to, "accessList": [{"address": "0x12"}]}, {"to": to, "type": "0x7"},
                {"to": to, "gasPrice": "0x1", "maxFeePerGas": "0x2"},
                {"to": to, "value": "0x-1"}, {"to": to, "data": "0x00", "input": "0x01"},
                "not an object"):
        assert _rpc_error(node, method, [bad, "latest"]).code == -32602, bad


def test_storage_slot_out_of_range_is_invalid_params(node: EmbeddedNode) -> None:
    error = _rpc_error(node, "eth_getStorageAt", ["0x" + "22" * 20, hex(2**256), "latest"])
    assert error.code == -32602
    assert node.handle("eth_getStorageAt", ["0x" + "22" * 20, hex(2**256 - 1), "latest"]) == (
        "0x" + "00" * 32)


def test_estimate_gas_counts_the_access_list(w3: Web3, node: EmbeddedNode, probe: Contract,
                                             accounts: list[LocalAccount]) -> None:
    """The estimate is enough for the very transaction it was asked about, access
    list included (each listed address costs 2,400 gas up front, EIP-2930)."""
    sender = accounts[1]
    data = probe.functions.touch(3, "0x" + "44" * 20)._encode_transaction_data()
    plain = {"from": sender.address, "to": probe.address, "input": data}
    listed = {**plain, "accessList": [{"address": "0x" + f"{i:02x}" * 20, "storageKeys": []}
                                      for i in range(0x50, 0x54)]}
    without = int(node.handle("eth_estimateGas", [plain]), 16)
    with_list = int(node.handle("eth_estimateGas", [listed]), 16)
    assert with_list >= without + 4 * 2_400
    tx = {"to": probe.address, "data": data, "nonce": 0, "chainId": CHAIN_ID,
          "gas": with_list, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
          "accessList": listed["accessList"]}
    raw = sender.sign_transaction(tx).raw_transaction
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    assert receipt.status == 1


def test_create_access_list_then_use_it(w3: Web3, node: EmbeddedNode, probe: Contract,
                                        accounts: list[LocalAccount]) -> None:
    """The list names the contract's slots and the other account it reads; a
    transaction carrying it costs what ``gasUsed`` said."""
    sender = accounts[2]
    other = "0x" + "44" * 20
    data = probe.functions.touch(3, other)._encode_transaction_data()
    call = {"from": sender.address, "to": probe.address, "input": data}
    result = node.handle("eth_createAccessList", [call, "latest"])
    assert "error" not in result
    listed = {Web3.to_checksum_address(e["address"]): e["storageKeys"]
              for e in result["accessList"]}
    assert set(listed) == {probe.address, Web3.to_checksum_address(other)}
    assert all(e["address"] == e["address"].lower() for e in result["accessList"])  # geth
    assert len(listed[probe.address]) == 1 and listed[Web3.to_checksum_address(other)] == []
    again = node.handle("eth_createAccessList", [{**call, "accessList": result["accessList"]}])
    assert again == result  # stable
    tx = {"to": probe.address, "data": data, "nonce": 0, "chainId": CHAIN_ID, "gas": 200_000,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
          "accessList": result["accessList"]}
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    assert receipt.status == 1 and receipt.gasUsed == int(result["gasUsed"], 16)
    simple = node.handle("eth_createAccessList", [{"from": sender.address,
                                                   "to": "0x" + "01" * 20}])
    assert simple == {"accessList": [], "gasUsed": hex(21_000)}


def test_create_access_list_reports_a_revert(node: EmbeddedNode, counter: Contract) -> None:
    data = counter.functions.increment(0)._encode_transaction_data()
    result = node.handle("eth_createAccessList", [{"to": counter.address, "input": data}])
    assert result["error"] == "execution reverted: counter: zero amount"
    assert int(result["gasUsed"], 16) > 21_000


@pytest.mark.slow
def test_access_lists_and_estimates_match_anvil(tmp_path: Path, node: EmbeddedNode,
                                                 accounts: list[LocalAccount],
                                                 context_artifact: Artifact) -> None:
    """Same contract, same calls: the same access list, gasUsed and estimate as anvil."""
    from tests._servers import Anvil, rpc

    from databright.chain.node import serve

    anvil = Anvil(chain_id=CHAIN_ID)
    server = serve(node)
    try:
        sender = accounts[0]
        anvil.fund(sender.address, 10**24)
        results = []
        for url in (anvil.url, f"http://127.0.0.1:{server.port}"):
            deploy = {"data": context_artifact.bytecode, "nonce": 0, "chainId": CHAIN_ID,
                      "gas": 1_000_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
            raw = sender.sign_transaction(deploy).raw_transaction
            tx_hash = rpc(url, "eth_sendRawTransaction", ["0x" + raw.hex()])
            receipt = None
            while receipt is None:
                receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])
            contract = Web3().eth.contract(address=Web3.to_checksum_address(receipt["contractAddress"]),
                                           abi=context_artifact.abi)
            data = contract.functions.touch(7, "0x" + "45" * 20)._encode_transaction_data()
            call = {"from": sender.address, "to": contract.address, "input": data}
            made = rpc(url, "eth_createAccessList", [call, "latest"])
            estimate = rpc(url, "eth_estimateGas", [{**call, "accessList": made["accessList"]}])
            results.append((made, int(estimate, 16)))
        (ours_list, ours_gas), (theirs_list, theirs_gas) = results[1], results[0]
        assert ours_list["gasUsed"] == theirs_list["gasUsed"]
        assert _sorted(ours_list) == _sorted(theirs_list)  # anvil's order varies
        assert abs(ours_gas - theirs_gas) <= theirs_gas // 64  # both search to within 1/64
    finally:
        server.shutdown()
        anvil.close()


def _sorted(made: dict[str, Any]) -> list[Any]:
    return sorted(made["accessList"], key=lambda entry: entry["address"])


def test_an_estimate_is_for_the_next_block(w3: Web3, node: EmbeddedNode,
                                           probe: Contract) -> None:
    """Blocks are mined on demand: a deadline that passed since the latest block
    still fails at ``latest``, but not in the estimate of a transaction, which
    will be mined in the next block (no tag: pending)."""
    now = w3.eth.get_block("latest").timestamp
    node.handle("evm_increaseTime", [7200])
    call = {"to": probe.address,
            "input": probe.functions.after(now + 3600)._encode_transaction_data()}
    assert _rpc_error(node, "eth_estimateGas", [call, "latest"]).message == (
        "execution reverted: context: too early")
    assert int(node.handle("eth_estimateGas", [call]), 16) > 21_000
    assert "error" not in node.handle("eth_createAccessList", [call])
