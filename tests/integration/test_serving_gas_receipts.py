"""A serving job on real chains: ComputeMarket set to serve ModelMarket's models
at deployment, a model's owner escrowing a serving budget, and its settlement
(two workers paid per prediction, one slashed) read from receipts, with equal
gas on the embedded chain and on anvil. The table is written to
test-artifacts/serving-gas-receipts.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from databright.chain import (
    ComputeMarket,
    DatasetParams,
    Deployment,
    Payment,
    Slash,
    add_compute_market,
    add_model_market,
    compile_contract,
)
from databright.chain._compute_events import JobCompleted, ServingSubmitted, WorkerPaid, WorkerSlashed
from databright.chain.computemarket import MIN_STAKE
from databright.chain.modelmarket import ModelMarket
from databright.errors import NotFound, TransactionError
from tests.integration.conftest import Backend

REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "serving-gas-receipts.md"
MEASUREMENT = b"\x4d" * 32
FEE = 10**12  # per prediction
BUDGET = 10**17
_measured: dict[str, dict[str, int]] = {}


def _markets(b: Backend, cache: Path) -> tuple[ComputeMarket, ModelMarket]:
    bare = Deployment(b.ledger.chain_id, {"DataMarket": {"address": b.market.address}}, {}, "", "")
    deployment = add_compute_market(b.ledger, b.accounts[0], add_model_market(b.ledger, b.accounts[0], bare, cache),
                                    cache)
    cm = ComputeMarket(b.ledger, deployment.address("ComputeMarket"), compile_contract("compute_market", cache).abi)
    mm = ModelMarket(b.ledger, deployment.address("ModelMarket"), compile_contract("model_market", cache).abi)
    return cm, mm


def _scenario(b: Backend, cm: ComputeMarket, mm: ModelMarket) -> dict[str, int]:
    owner, model_owner, coordinator, honest, other, liar = b.accounts
    gas: dict[str, int] = {}

    def used(receipt: Any) -> int:
        return int(receipt["gasUsed"])

    assert cm.model_market_address() == mm.address
    dataset = b.market.create_dataset(owner, DatasetParams(metadata_digest=b"\x11" * 32, initial_shares=1_000,
                                                           training_fee=10**15))
    model = mm.register(model_owner, dataset, b"\x51" * 32, b"\x52" * 32, b"\x53" * 32, 900_000, 10**13, 1000)
    for worker in (honest, other, liar):
        cm.register_worker(worker, FEE, MIN_STAKE)
    cm.allow_measurement(owner, MEASUREMENT)
    cm.register_coordinator(owner, coordinator.address, MEASUREMENT, "bafkevidence")
    deadline = int(b.ledger.w3.eth.get_block("latest")["timestamp"]) + 3600
    with pytest.raises(TransactionError, match="not the model's owner"):
        cm.submit_serving(owner, model, fee_per_prediction=FEE, redundancy=3, budget=BUDGET, deadline=deadline)
    receipt = b.ledger.transact(model_owner, cm.contract.functions.submit_serving(model, FEE, 3, BUDGET, deadline),
                                value=BUDGET)
    gas["submit_serving"] = used(receipt)
    (submitted,) = cm.decode_receipt(receipt)
    assert isinstance(submitted, ServingSubmitted) and (submitted.model_id, submitted.version) == (model, 1)
    job = submitted.job_id
    terms = cm.serving(job)
    assert (terms.model_id, terms.fee_per_prediction) == (model, FEE) and cm.job(job).serving
    with pytest.raises(NotFound, match="unknown serving job"):
        cm.serving(cm.submit_job(model_owner, dataset, "bafkspec", rounds=1, local_steps=1, redundancy=1,
                                 budget=1, deadline=deadline))
    cm.accept_job(coordinator, job)
    with pytest.raises(TransactionError, match="fee is not the serving fee"):
        cm.complete_job(coordinator, job, [Payment(honest.address, 1, 2 * FEE)], [], b"\x52" * 32, "bafkreport")
    receipt = cm.complete_job(coordinator, job, [Payment(honest.address, 40, FEE), Payment(other.address, 40, FEE)],
                              [Slash(liar.address, MIN_STAKE, "bafkevidence")], b"\x52" * 32, "bafkreport")
    gas["complete_job (serving: 2 payments, 1 slash)"] = used(receipt)
    assert [type(r) for r in cm.decode_receipt(receipt)] == [WorkerPaid, WorkerPaid, WorkerSlashed, JobCompleted]
    done = cm.job(job)
    assert (done.paid, done.refunded, done.compensation) == (80 * FEE, BUDGET - 80 * FEE, MIN_STAKE)
    assert cm.refunds(model_owner.address) == BUDGET - 80 * FEE + MIN_STAKE
    return gas


def test_serving_on_receipts(backend: Backend, contract_cache: Path) -> None:
    gas = _scenario(backend, *_markets(backend, contract_cache))
    _measured[backend.name] = gas
    if len(_measured) == 2:
        assert _measured["embedded"] == _measured["anvil"], "the chains charge different gas"
        REPORT.parent.mkdir(exist_ok=True)
        lines = ["| operation | gas (receipt) |", "|---|---:|"]
        lines += [f"| {name} | {value:,} |" for name, value in gas.items()]
        REPORT.write_text("\n".join(lines) + "\n")
