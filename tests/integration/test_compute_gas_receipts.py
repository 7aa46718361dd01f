"""ComputeMarket on real chains: a job's whole life through the typed client,
its events as typed records, and its gas read from receipts, on the embedded
chain and on anvil.

Both chains must charge the same gas. The table (register a worker, submit a
job, accept it, complete it with 1 and with 16 payments, expire one) is
written to test-artifacts/compute-gas-receipts.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from databright.chain import (
    ComputeMarket,
    DatasetParams,
    Deployment,
    JobStatus,
    Payment,
    Slash,
    add_compute_market,
    compile_contract,
)
from databright.chain._compute_events import JobCompleted, JobSubmitted, WorkerPaid, WorkerSlashed
from databright.chain.computemarket import MIN_STAKE, UNBONDING_DELAY
from databright.errors import TransactionError
from tests.integration.conftest import Backend

REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "compute-gas-receipts.md"
MEASUREMENT = b"\x4d" * 32
FEE = 10**14
BUDGET = 10**17
MANY = 16
_measured: dict[str, dict[str, int]] = {}


def _compute_market(b: Backend, cache: Path) -> ComputeMarket:
    # a deployment made before ComputeMarket existed gets it added
    bare = Deployment(b.ledger.chain_id, {"DataMarket": {"address": b.market.address}}, {}, "", "")
    deployment = add_compute_market(b.ledger, b.accounts[0], bare, cache)
    abi = compile_contract("compute_market", cache).abi
    return ComputeMarket(b.ledger, deployment.address("ComputeMarket"), abi)


def _now(b: Backend) -> int:
    return int(b.ledger.w3.eth.get_block("latest")["timestamp"])


def _scenario(b: Backend, cm: ComputeMarket) -> dict[str, int]:
    dm, (owner, submitter, coordinator, worker, cheat, _) = b.market, b.accounts
    gas: dict[str, int] = {}

    def used(receipt: Any) -> int:
        return int(receipt["gasUsed"])

    assert (cm.owner(), cm.min_stake(), cm.unbonding_delay()) == (owner.address, MIN_STAKE, UNBONDING_DELAY)
    dataset = dm.create_dataset(owner, DatasetParams(metadata_digest=b"\x11" * 32, initial_shares=1_000,
                                                     training_fee=10**16))
    dm.deposit(submitter, dataset, 1)  # a dataset's first payment also sets up its revenue word
    gas["register_worker"] = used(cm.register_worker(worker, FEE, MIN_STAKE))
    cm.register_worker(cheat, FEE, 2 * MIN_STAKE)
    assert cm.worker(worker.address).active and cm.worker(cheat.address).stake == 2 * MIN_STAKE
    cm.allow_measurement(owner, MEASUREMENT)
    cm.register_coordinator(owner, coordinator.address, MEASUREMENT, "bafkevidence")
    assert cm.is_coordinator(coordinator.address)
    assert cm.coordinator(coordinator.address).evidence_cid == "bafkevidence"

    revenue = dm.revenue_total(dataset)
    deadline = _now(b) + 3600
    job = cm.submit_job(submitter, dataset, "bafkspec", rounds=2, local_steps=5, redundancy=3, budget=BUDGET,
                        deadline=deadline)
    assert dm.revenue_total(dataset) == revenue + 10**16
    receipt = b.ledger.transact(submitter, cm.contract.functions.submit_job(
        dataset, "bafkspec", 2, 5, 3, 500, BUDGET, deadline), value=BUDGET + 10**16)
    gas["submit_job"] = used(receipt)
    second = job + 1
    submitted = cm.decode_receipt(receipt)
    assert isinstance(submitted[0], JobSubmitted) and submitted[0].budget == BUDGET
    gas["accept_job"] = used(cm.accept_job(coordinator, job))
    cm.accept_job(coordinator, second)
    with pytest.raises(TransactionError, match="fee below the worker's minimum"):
        cm.complete_job(coordinator, job, [Payment(worker.address, 1, FEE - 1)], [], b"\xc0" * 32, "bafkreport")

    receipt = cm.complete_job(coordinator, job, [Payment(worker.address, 3, FEE)],
                              [Slash(cheat.address, MIN_STAKE, "bafkcheat")], b"\xc0" * 32, "bafkreport")
    gas["complete_job (1 payment, 1 slash)"] = used(receipt)
    records = cm.decode_receipt(receipt)
    assert [type(r) for r in records] == [WorkerPaid, WorkerSlashed, JobCompleted]
    done = records[-1]
    assert isinstance(done, JobCompleted) and (done.paid, done.refunded, done.compensation) == (
        3 * FEE, BUDGET - 3 * FEE, MIN_STAKE)
    finished = cm.job(job)
    assert finished.status is JobStatus.COMPLETED and finished.held == 0
    assert finished.budget == finished.paid + finished.refunded
    assert cm.refunds(submitter.address) == BUDGET - 3 * FEE + MIN_STAKE
    with pytest.raises(TransactionError, match="job not accepted"):
        cm.complete_job(coordinator, job, [], [], b"\xc0" * 32, "bafkreport")

    receipt = cm.complete_job(coordinator, second, [Payment(worker.address, 1, FEE)] * MANY, [],
                              b"\xc0" * 32, "bafkreport")
    gas[f"complete_job ({MANY} payments)"] = used(receipt)
    assert cm.earnings(worker.address) == (3 + MANY) * FEE
    before = b.ledger.balance(worker.address)
    receipt = b.ledger.transact(worker, cm.contract.functions.withdraw_earnings())
    gas["withdraw_earnings"] = used(receipt)
    paid_gas = used(receipt) * int(receipt["effectiveGasPrice"])
    assert b.ledger.balance(worker.address) == before + (3 + MANY) * FEE - paid_gas
    assert cm.withdraw_refund(submitter) == BUDGET - 3 * FEE + MIN_STAKE + BUDGET - MANY * FEE

    late = cm.submit_job(submitter, dataset, "bafkspec", rounds=1, local_steps=1, redundancy=1, budget=BUDGET,
                         deadline=_now(b) + 60)
    with pytest.raises(TransactionError, match="deadline not passed"):
        cm.expire_job(owner, late)
    b.advance(61)
    gas["expire_job"] = used(b.ledger.transact(owner, cm.contract.functions.expire_job(late)))
    assert cm.job(late).status is JobStatus.EXPIRED and cm.total_held() == 0
    assert cm.refunds(submitter.address) == BUDGET

    unbonding_at = cm.begin_unbonding(cheat)
    with pytest.raises(TransactionError, match="unbonding delay running"):
        cm.withdraw_stake(cheat)
    assert unbonding_at == cm.worker(cheat.address).unbonding_at
    kinds = {type(r).__name__ for r in cm.records(0, b.ledger.block_number())}
    assert {"WorkerRegistered", "MeasurementAllowed", "CoordinatorRegistered", "JobAccepted", "JobExpired",
            "EarningsWithdrawn", "RefundWithdrawn", "UnbondingBegun"} <= kinds
    return gas


def test_compute_market_on_receipts(backend: Backend, contract_cache: Path) -> None:
    gas = _scenario(backend, _compute_market(backend, contract_cache))
    _measured[backend.name] = gas
    if len(_measured) == 2:
        assert _measured["embedded"] == _measured["anvil"], "the chains charge different gas"
        REPORT.parent.mkdir(exist_ok=True)
        lines = ["| operation | gas (receipt) |", "|---|---:|"]
        lines += [f"| {name} | {value:,} |" for name, value in gas.items()]
        REPORT.write_text("\n".join(lines) + "\n")
