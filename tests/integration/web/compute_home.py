"""A ComputeMarket deployed into a home and one job run through it, for the compute page's tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount

from databright.chain import DataMarket, compile_contract
from databright.workspace import Workspace

__all__ = ["FEE", "MIN_STAKE", "Job", "run_job"]

MIN_STAKE = 10**17
FEE = 10**15


def _market(ws: Workspace) -> Any:
    """The home's ComputeMarket, deployed next to its DataMarket (and into its manifest) if it has none."""
    compiled = compile_contract("compute_market", ws.home.cache)
    deployment = ws.deployment
    if "ComputeMarket" not in deployment.contracts:
        args = encode(["address", "uint256", "uint256"], [ws.market.address, MIN_STAKE, 7 * 86_400])
        receipt = ws.ledger.transact(ws.signer("dev0"), data=compiled.bytecode + args, gas=None)
        deployment.contracts["ComputeMarket"] = {"address": receipt["contractAddress"],
                                                 "block": int(receipt["blockNumber"])}
        deployment.save(ws.home.deployments)
    return DataMarket(ws.ledger, deployment.address("ComputeMarket"), compiled.abi)


@dataclass(frozen=True)
class Job:
    job_id: int
    honest: LocalAccount
    cheat: LocalAccount
    stake: int


def run_job(ws: Workspace) -> Job:
    """dev1 and dev2 register as workers with the minimum stake, dev3 coordinates dev0's job on
    dataset 1 with redundancy 3: dev1 is paid for 4 tasks, dev2 slashed half its stake."""
    market = _market(ws)
    send = market._send
    stake = max(MIN_STAKE, int(market._read("min_stake")))
    honest, cheat, coordinator = ws.signer("dev1"), ws.signer("dev2"), ws.signer("dev3")
    send(honest, "register_worker", FEE, value=stake)
    send(cheat, "register_worker", FEE, value=stake)
    owner = ws.signer("dev0")
    send(owner, "allow_measurement", b"\x4d" * 32)
    send(owner, "register_coordinator", coordinator.address, b"\x4d" * 32, "bafkreievidence")
    head = ws.ledger.w3.eth.get_block("latest")
    fee = int(ws.market.contract.functions.training_fee(1).call())
    deadline = int(head["timestamp"]) + int(market._read("unbonding_delay")) // 2
    receipt = send(owner, "submit_job", 1, "bafkreispec", 3, 5, 3, 500, 10 * FEE, deadline, value=10 * FEE + fee)
    job_id = market._created(receipt, "JobSubmitted", "job_id")
    send(coordinator, "accept_job", job_id)
    send(coordinator, "complete_job", job_id, [(honest.address, 4, FEE)],
         [(cheat.address, stake // 2, "bafkreislash")], b"\xc0" * 32, "bafkreireport")
    return Job(job_id, honest, cheat, stake)
