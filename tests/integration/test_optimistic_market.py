"""An optimistically verified job from ComputeMarket.submit_job to complete_job, its faking worker slashed on chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from databright.chain import JobStatus
from databright.chain.computemarket import MIN_STAKE
from databright.compute import Coordinator, JobSettings, RequestDomain, RequestSigner, connect
from databright.compute._app import coordinator_app
from databright.compute._market import MarketLink
from databright.compute._worker import Worker, run_workers
from databright.storage import LocalBlobStore
from tests.integration.conftest import Backend
from tests.integration.test_compute_market_link import compute_market
from tests.unit.compute._byzantine import FakingWorker
from tests.unit.compute.conftest import FINGERPRINT, SPEC, table_items

FEE = 10**14
STEPS = 4


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
@pytest.mark.parametrize("fraction", [0.10, 1.0])
def test_a_worker_faking_its_steps_is_slashed_on_chain_and_the_job_completes(
        backend: Backend, tmp_path: Path, contract_cache: Path, fraction: float) -> None:
    b = backend
    cm, dataset = compute_market(b, contract_cache)
    owner, submitter, key = b.accounts[0], b.accounts[1], b.accounts[2]
    store = LocalBlobStore(tmp_path / "blobs")
    items = table_items(store, 20)
    # Every segment sampled, so a worker faking even one of its four is caught for certain.
    job_cid = str(store.put(JobSettings("optimistic", samples=STEPS).document(SPEC)))
    accounts = [Account.create() for _ in range(4)]
    for a in accounts:
        b.ledger.transact(owner, to=a.address, value=10 * MIN_STAKE)
        cm.register_worker(a, FEE, MIN_STAKE)
    deadline = int(b.ledger.w3.eth.get_block("latest")["timestamp"]) + 3600
    job_id = cm.submit_job(submitter, dataset, job_cid, rounds=2, local_steps=STEPS, redundancy=1,
                           budget=10**17, deadline=deadline, max_exposure_bps=5_000)

    domain = RequestDomain(b.ledger.chain_id, cm.address)
    engine = connect(f"sqlite:///{tmp_path / 'coordinator.sqlite'}")
    coordinator = Coordinator(engine, store, domain, slash_wei=MIN_STAKE // 2)
    link = MarketLink(coordinator, cm, key, lambda d: (items, None))
    link.poll()
    assert cm.job(job_id).status == JobStatus.ACCEPTED
    with TestClient(coordinator_app(coordinator)) as client:
        signers = [RequestSigner(domain, bytes(a.key)) for a in accounts]
        cheat = FakingWorker(client, signers[0], FINGERPRINT, FEE, fraction=fraction, mode="perturb")
        honest = [Worker(client, s, FINGERPRINT, FEE) for s in signers[1:]]
        run_workers([cheat, *honest], until_idle=True)
    link.poll()
    job = cm.job(job_id)
    settlement = coordinator.settlement(job_id)
    assert job.status == JobStatus.COMPLETED and job.report_cid == settlement.report_cid
    assert [s.worker for s in settlement.slashes] == [cheat.signer.address]
    assert cm.worker(cheat.signer.address).stake == MIN_STAKE // 2
    # 2 rounds x 2 shards, each paid once to the honest worker whose result was accepted.
    assert sum(p.tasks for p in settlement.payments) == 4 and job.paid == 4 * FEE
    assert cheat.signer.address not in {p.worker for p in settlement.payments}
    evidence = json.loads(store.get(settlement.slashes[0].evidence_cid))
    assert evidence["kind"] == "segment" and evidence["commitment"]["signature"] and len(evidence["proofs"]) == 2
    engine.dispose()
