"""A ComputeMarket deployed into a home and one job run through it, for the compute page's tests."""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount

from databright.chain import DataMarket, compile_contract
from databright.workspace import Workspace

__all__ = ["FEE", "MIN_STAKE", "run_job"]

MIN_STAKE = 10**17
FEE = 10**15


def _deploy(ws: Workspace) -> Any:
    """ComputeMarket next to the home's DataMarket, written into its deployment manifest."""
    compiled = compile_contract("compute_market", ws.home.cache)
    args = encode(["address", "uint256", "uint256"], [ws.market.address, MIN_STAKE, 7 * 86_400])
    receipt = ws.ledger.transact(ws.signer("dev0"), data=compiled.bytecode + args, gas=None)
    deployment = ws.deployment
    deployment.contracts["ComputeMarket"] = {"address": receipt["contractAddress"],
                                             "block": int(receipt["blockNumber"])}
    deployment.save(ws.home.deployments)
    return DataMarket(ws.ledger, str(receipt["contractAddress"]), compiled.abi)


def run_job(ws: Workspace) -> tuple[LocalAccount, LocalAccount]:
    """Deploy ComputeMarket; dev1 and dev2 work, dev3 coordinates dev0's job on dataset 1 with
    redundancy 3: dev1 is paid for 4 tasks, dev2 slashed half its stake. Returns (dev1, dev2)."""
    market = _deploy(ws)
    send = market._send
    honest, cheat, coordinator = ws.signer("dev1"), ws.signer("dev2"), ws.signer("dev3")
    send(honest, "register_worker", FEE, value=MIN_STAKE)
    send(cheat, "register_worker", FEE, value=MIN_STAKE)
    owner = ws.signer("dev0")
    send(owner, "allow_measurement", b"\x4d" * 32)
    send(owner, "register_coordinator", coordinator.address, b"\x4d" * 32, "bafkreievidence")
    head = ws.ledger.w3.eth.get_block("latest")
    fee = int(ws.market.contract.functions.training_fee(1).call())
    send(owner, "submit_job", 1, "bafkreispec", 3, 5, 3, 500, 10 * FEE, int(head["timestamp"]) + 86_400,
         value=10 * FEE + fee)
    send(coordinator, "accept_job", 1)
    send(coordinator, "complete_job", 1, [(honest.address, 4, FEE)], [(cheat.address, MIN_STAKE // 2, "bafkreislash")],
         b"\xc0" * 32, "bafkreireport")
    return honest, cheat
