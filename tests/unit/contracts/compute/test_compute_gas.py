"""Gas of the ComputeMarket paths, compared with a recorded table.

In-process estimates of full transaction gas (`market_helpers.measure`, the
same method as the DataMarket and ModelMarket tables; receipts on real chains
are checked by tests/integration/test_compute_gas_receipts.py). An operation
costing more than 2% above its record in compute_gas_budget.json fails; set
DATABRIGHT_RECORD_GAS=1 to rewrite the record after an intended change. A
Markdown table is written to test-artifacts/compute-gas.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boa

from tests.unit.contracts.compute._helpers import (
    CHECKPOINT,
    DELAY,
    MIN_STAKE,
    TRAINING_FEE,
    add_coordinator,
    EVIDENCE,
    create_dataset,
    deploy_with_models,
    funded,
    register_model,
    register_worker,
    submit,
    submit_serving,
)
from tests.unit.contracts.market_helpers import measure

RECORD = Path(__file__).resolve().parent / "compute_gas_budget.json"
ARTIFACT = Path(__file__).resolve().parents[4] / "test-artifacts" / "compute-gas.md"
TOLERANCE = 1.02
FEE = 10**14
BUDGET = 10**17
# a realistic CID (CIDv1, base32) for the spec and the report
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
PAYMENTS = (1, 16, 64)


def run_scenario(data_market: Any, cm: Any, model_market: Any) -> dict[str, int]:
    creator, submitter, coordinator = (funded(f"gas-{n}") for n in ("creator", "submitter", "coordinator"))
    workers = [funded(f"gas-worker-{i}") for i in range(max(PAYMENTS))]
    dataset = create_dataset(data_market, creator, training_fee=TRAINING_FEE)
    with boa.env.prank(submitter):
        data_market.deposit(dataset, value=1)  # a dataset's first payment also sets up its revenue word
    gas: dict[str, int] = {}
    gas["register_worker"] = measure(cm, workers[0], lambda: cm.register_worker(FEE, value=MIN_STAKE))
    for w in workers[1:]:
        register_worker(cm, w, FEE)
    gas["add_stake"] = measure(cm, workers[0], lambda: cm.add_stake(value=MIN_STAKE))
    gas["set_min_fee (raise)"] = measure(cm, workers[1], lambda: cm.set_min_fee(FEE))
    add_coordinator(cm, coordinator)
    deadline = int(boa.env.evm.patch.timestamp) + DELAY // 2
    submit(cm, submitter, dataset, BUDGET)  # the first job, not measured
    gas["submit_job"] = measure(cm, submitter, lambda: cm.submit_job(
        dataset, CID, 10, 50, 3, 500, BUDGET, deadline, value=BUDGET + TRAINING_FEE))
    for _ in PAYMENTS[1:]:
        submit(cm, submitter, dataset, BUDGET)
    first = cm.job_count() - len(PAYMENTS) + 1
    gas["accept_job"] = measure(cm, coordinator, lambda: cm.accept_job(first))
    for job in range(first + 1, first + len(PAYMENTS)):
        with boa.env.prank(coordinator):
            cm.accept_job(job)
    for job, n in zip(range(first, first + len(PAYMENTS)), PAYMENTS, strict=True):
        payments = [(w, 3, FEE) for w in workers[:n]]
        gas[f"complete_job ({n} payment{'s' if n > 1 else ''})"] = measure(cm, coordinator, lambda: cm.complete_job(
            job, payments, [], CHECKPOINT, CID))
    gas["withdraw_earnings"] = measure(cm, workers[2], lambda: cm.withdraw_earnings())
    gas["withdraw_refund"] = measure(cm, submitter, lambda: cm.withdraw_refund())
    late = submit(cm, submitter, dataset, BUDGET, deadline=int(boa.env.evm.patch.timestamp) + 10)
    boa.env.time_travel(seconds=11)
    gas["expire_job"] = measure(cm, submitter, lambda: cm.expire_job(late))
    gas.update(serving_scenario(cm, model_market, dataset, coordinator, workers[:4]))
    gas["begin_unbonding"] = measure(cm, workers[3], lambda: cm.begin_unbonding())
    boa.env.time_travel(seconds=DELAY)
    gas["withdraw_stake"] = measure(cm, workers[3], lambda: cm.withdraw_stake())
    return gas


def serving_scenario(cm: Any, model_market: Any, dataset: int, coordinator: str,
                     workers: list[str]) -> dict[str, int]:
    """A serving job settled as three agreeing workers and one slashed odd one out."""
    owner = funded("gas-model-owner")
    model = register_model(model_market, owner, dataset)
    deadline = int(boa.env.evm.patch.timestamp) + DELAY // 2
    submit_serving(cm, owner, model, BUDGET, FEE)  # the first, not measured
    gas = {"submit_serving": measure(cm, owner, lambda: cm.submit_serving(model, FEE, 3, BUDGET, deadline,
                                                                          value=BUDGET))}
    job = cm.job_count()
    with boa.env.prank(coordinator):
        cm.accept_job(job)
    payments = [(w, 200, FEE) for w in workers[:3]]
    gas["complete_job (serving: 3 payments, 1 slash)"] = measure(cm, coordinator, lambda: cm.complete_job(
        job, payments, [(workers[3], MIN_STAKE // 10, EVIDENCE)], CHECKPOINT, CID))
    return gas


def test_compute_gas() -> None:
    with boa.env.anchor():
        gas = run_scenario(*deploy_with_models())
    if os.environ.get("DATABRIGHT_RECORD_GAS") == "1" or not RECORD.exists():
        RECORD.write_text(json.dumps(gas, indent=2) + "\n")
    recorded: dict[str, int] = json.loads(RECORD.read_text())
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    per = (gas["complete_job (64 payments)"] - gas["complete_job (16 payments)"]) // 48
    lines = ["# ComputeMarket gas (full transaction gas, titanoboa / py-evm prague)", "",
             "| operation | gas | recorded |", "| --- | ---: | ---: |"]
    lines += [f"| {op} | {used:,} | {recorded.get(op, used):,} |" for op, used in gas.items()]
    lines.append(f"| complete_job, each further payment | {per:,} | |")
    ARTIFACT.write_text("\n".join(lines) + "\n")

    # a worker's first payment writes two fresh words (its lifetime tallies
    # and its balance owed); nothing else may grow with the payments
    assert per <= 2 * 22_100 + 2_000, f"a payment costs {per:,} gas"
    assert set(gas) == set(recorded), "compute_gas_budget.json is out of date"
    regressions = {op: (used, recorded[op]) for op, used in gas.items() if used > recorded[op] * TOLERANCE}
    assert not regressions, f"gas above the recorded table by more than 2%: {regressions}"
