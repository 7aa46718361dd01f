"""A ComputeMarket deployed into a home and one job run through it, for the compute page's tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount

from databright.chain import DataMarket, compile_contract
from databright.compute import Coordinator, JobConfig, RequestDomain, RequestSigner, connect
from databright.ml import ModelSpec
from databright.storage import canonical_json
from databright.workspace import Workspace
from tests._servers import free_port

__all__ = ["FEE", "MIN_STAKE", "SPEC", "Job", "coordinator_with", "run_job", "served", "submit_job"]

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


def submit_job(ws: Workspace, spec_cid: str, redundancy: int, *, rounds: int = 2, local_steps: int = 3) -> int:
    """dev0 submits a job on dataset 1 naming ``spec_cid``; nobody accepts it."""
    market = _market(ws)
    head = ws.ledger.w3.eth.get_block("latest")
    fee = int(ws.market.contract.functions.training_fee(1).call())
    deadline = int(head["timestamp"]) + int(market._read("unbonding_delay")) // 2
    receipt = market._send(ws.signer("dev0"), "submit_job", 1, spec_cid, rounds, local_steps, redundancy, 2500,
                           10 * FEE, deadline, value=10 * FEE + fee)
    return int(market._created(receipt, "JobSubmitted", "job_id"))


@contextmanager
def served(app: Any) -> Iterator[str]:
    """An ASGI app (a coordinator's, or a hostile stand-in) over real HTTP on 127.0.0.1; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


SPEC = ModelSpec(kind="mlp", input="table", features=("a", "b"), classes=("a", "b"), hidden=(4,), batch_size=0,
                 lr=0.05)


def coordinator_with(ws: Workspace, db: Path, job_id: int, redundancy: int = 1) -> tuple[Coordinator, str]:
    """A real coordinator (SQLite at ``db``) running on-chain job ``job_id`` over 40 items, one worker of
    it holding a lease (so the exposure ledger has a line); returns it and that worker's address."""
    coordinator = Coordinator(connect(f"sqlite:///{db}"), ws.store, RequestDomain(ws.ledger.chain_id, "0x" + "c0" * 20))
    rng = np.random.default_rng(0)
    items = [(str(ws.store.put(canonical_json({"a": float(a), "b": float(b), "row": i}))), "a" if a > b else "b")
             for i, (a, b) in enumerate(rng.normal(size=(40, 2)))]
    coordinator.add_job(JobConfig(job_id, 1, SPEC, rounds=2, local_steps=3, redundancy=redundancy,
                                  max_exposure_bps=2500, budget=10**6), items)
    signer = RequestSigner(coordinator.domain, os.urandom(32))
    coordinator.register_worker(signer.address, {"torch": "test"}, 1)
    request = coordinator.authenticate("POST", "/v1/claim", b"", signer.headers("POST", "/v1/claim"))
    assert coordinator.claim(request) is not None
    return coordinator, signer.address
