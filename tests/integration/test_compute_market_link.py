"""A TMR job from ComputeMarket.submit_job to complete_job on the embedded chain, with a cheat slashed."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from databright.chain import ComputeMarket, DatasetParams, Deployment, JobStatus, add_compute_market, compile_contract
from databright.chain.computemarket import MIN_STAKE
from databright.compute import Coordinator, RequestDomain, RequestSigner, connect
from databright.compute._market import MarketLink
from databright.storage import LocalBlobStore
from tests.integration.conftest import Backend
from tests.unit.compute.conftest import FINGERPRINT, SPEC, Market, table_items
from tests.unit.compute.test_coordinator import drive

FEE = 10**14


def compute_market(b: Backend, contract_cache: Path) -> tuple[ComputeMarket, int]:
    """ComputeMarket beside the backend's DataMarket, accounts[2] an allow-listed coordinator, and a dataset."""
    bare = Deployment(b.ledger.chain_id, {"DataMarket": {"address": b.market.address}}, {}, "", "")
    deployment = add_compute_market(b.ledger, b.accounts[0], bare, contract_cache)
    cm = ComputeMarket(b.ledger, deployment.address("ComputeMarket"),
                       compile_contract("compute_market", contract_cache).abi)
    owner, key = b.accounts[0], b.accounts[2]
    cm.allow_measurement(owner, b"\x4d" * 32)
    cm.register_coordinator(owner, key.address, b"\x4d" * 32, "bafkevidence")
    dataset = b.market.create_dataset(owner, DatasetParams(metadata_digest=b"\x11" * 32, initial_shares=1_000,
                                                           training_fee=10**16))
    return cm, int(dataset)


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_job_runs_from_submit_to_complete_with_the_cheat_slashed(backend: Backend, tmp_path: Path,
                                                                 contract_cache: Path) -> None:
    b = backend
    cm, dataset = compute_market(b, contract_cache)
    owner, submitter, key = b.accounts[0], b.accounts[1], b.accounts[2]
    store = LocalBlobStore(tmp_path / "blobs")
    items = table_items(store, 20)
    spec_cid = str(store.put(SPEC.to_json().encode()))
    accounts = [Account.create() for _ in range(6)]
    for a in accounts:
        b.ledger.transact(owner, to=a.address, value=10 * MIN_STAKE)
        cm.register_worker(a, FEE, MIN_STAKE)
    deadline = int(b.ledger.w3.eth.get_block("latest")["timestamp"]) + 3600
    job_id = cm.submit_job(submitter, dataset, spec_cid, rounds=2, local_steps=3, redundancy=3,
                           budget=10**17, deadline=deadline, max_exposure_bps=10_000)

    domain = RequestDomain(b.ledger.chain_id, cm.address)
    engine = connect(f"sqlite:///{tmp_path / 'coordinator.sqlite'}")
    coordinator = Coordinator(engine, store, domain, slash_wei=MIN_STAKE // 2)
    link = MarketLink(coordinator, cm, key, lambda d: (items, None))
    link.poll()
    assert cm.job(job_id).status == JobStatus.ACCEPTED

    market = Market(store, coordinator, items, "")
    signers = [RequestSigner(domain, bytes(a.key)) for a in accounts]
    for s in signers:
        coordinator.register_worker(s.address, FINGERPRINT, FEE)
    cheat = signers[0]
    drive(market, signers, {cheat.address: "perturb"})
    link.poll()
    link.poll()  # settling again changes nothing: the chain already shows the job completed
    job = cm.job(job_id)
    settlement = coordinator.settlement(job_id)
    assert job.status == JobStatus.COMPLETED and job.report_cid == settlement.report_cid
    assert job.checkpoint_digest == bytes.fromhex(settlement.checkpoint_sha256)
    assert cm.worker(cheat.address).stake == MIN_STAKE // 2
    assert job.paid == settlement.paid == FEE * sum(p.tasks for p in settlement.payments)
    assert job.budget == job.paid + job.refunded + job.held
    engine.dispose()
