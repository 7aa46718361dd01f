"""The conformance sequence as foundry's ``cast`` runs it, one command per step."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from eth_account import Account

from tests._servers import foundry_binary
from tests.conformance._harness import probe_artifact

STEPS = [
    "chainId", "gasPrice", "baseFee", "deploy", "send1559", "sendLegacy", "sendContract", "call", "callPast",
    "storage", "balancePast", "nonce", "logs", "receipt", "block", "estimate", "estimateFloor", "sendFloor",
    "revertString",
    "revertCustom", "accessList", "sendAccessList", "unknownMethod",
]
_BLOCK_FIELDS = ("number", "gasUsed", "gasLimit", "baseFeePerGas", "miner", "transactionsRoot",
                 "receiptsRoot", "logsBloom", "transactions")
_RECEIPT_FIELDS = ("transactionHash", "status", "type", "blockNumber", "gasUsed", "cumulativeGasUsed",
                   "effectiveGasPrice", "contractAddress", "logs", "logsBloom")


def run(url: str, keys: list[str]) -> dict[str, Any]:
    cast = foundry_binary("cast")
    alice, bob = (Account.from_key(k) for k in keys[:2])
    out: dict[str, Any] = {}

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cast, *args], capture_output=True, text=True, timeout=60)

    def value(command: str, *args: str) -> Any:
        result = sh(command, "--rpc-url", url, *args)
        if result.returncode != 0:
            code = re.search(r"code:? (-?\d+)", result.stderr)
            return {"threw": {"rpcCode": int(code.group(1)) if code else None}}
        text = result.stdout.strip()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def send(*args: str, key: str = keys[0]) -> Any:
        receipt = value("send", "--private-key", key, "--json", *args)
        return {k: receipt.get(k) for k in _RECEIPT_FIELDS} if isinstance(receipt, dict) and "threw" not in receipt else receipt

    out["chainId"] = value("chain-id")
    out["gasPrice"] = value("gas-price")
    out["baseFee"] = value("base-fee")
    code = probe_artifact()["bytecode"]
    out["deploy"] = send("--gas-limit", "1000000", "--create", code, "constructor(uint256)", "7")
    probe = out["deploy"].get("contractAddress") if isinstance(out["deploy"], dict) else None
    probe = probe or "0x" + "00" * 20
    out["send1559"] = send("--gas-limit", "21000", "--value", "1234", bob.address)
    out["sendLegacy"] = send("--legacy", "--gas-limit", "21000", "--value", "4321", bob.address)
    out["sendContract"] = send("--gas-limit", "300000", probe, "store(uint256,uint256)", "1", "11")
    out["call"] = value("call", probe, "total()(uint256)")
    out["callPast"] = value("call", "--block", "2", probe, "total()(uint256)")
    out["storage"] = value("storage", probe, "0")
    out["balancePast"] = value("balance", "--block", "1", bob.address)
    out["nonce"] = value("nonce", alice.address)
    logs = value("logs", "--json", "--from-block", "0", "--address", probe)
    out["logs"] = [{k: log[k] for k in ("topics", "data", "blockNumber", "logIndex", "transactionHash")}
                   for log in logs] if isinstance(logs, list) else logs
    receipt_hash = out["sendContract"].get("transactionHash") if isinstance(out["sendContract"], dict) else "0x"
    receipt = value("receipt", "--json", str(receipt_hash))
    out["receipt"] = {k: receipt.get(k) for k in _RECEIPT_FIELDS} if isinstance(receipt, dict) else receipt
    block = value("block", "--json", "2")
    out["block"] = {k: block.get(k) for k in _BLOCK_FIELDS} if isinstance(block, dict) else block
    out["estimate"] = value("estimate", "--from", alice.address, probe, "store(uint256,uint256)", "9", "99")
    # Calldata heavy enough that EIP-7623's floor price sets the gas (Prague).
    heavy = "0x" + "ff" * 1000
    out["estimateFloor"] = value("estimate", "--from", alice.address, bob.address, heavy)
    out["sendFloor"] = send("--gas-limit", "100000", bob.address, heavy)
    out["revertString"] = _revert(sh("call", "--rpc-url", url, probe, "fail(string)", "boom"), "boom")
    out["revertCustom"] = _revert(sh("call", "--rpc-url", url, "--from", alice.address, probe, "refuse(uint256)", "5"),
                                  "0x" + _selector("Refused(address,uint256)"))
    out["accessList"] = value("access-list", "--json", "--from", alice.address, probe, "peek(address)", bob.address)
    out["sendAccessList"] = send("--access-list", "--", probe, "peek(address)", bob.address)
    unknown = sh("rpc", "--rpc-url", url, "eth_fooBar")
    code = re.search(r"code:? (-?\d+)", unknown.stderr)
    out["unknownMethod"] = {"threw": {"rpcCode": int(code.group(1)) if code else None}}
    return out


def _selector(signature: str) -> str:
    from eth_utils.crypto import keccak

    return keccak(text=signature)[:4].hex()


def _revert(result: subprocess.CompletedProcess[str], needle: str) -> dict[str, Any]:
    return {"failed": result.returncode != 0, "reported": needle.lower() in result.stderr.lower()}
