"""Gas of the ModelMarket hot paths, compared with a recorded table.

In-process estimates of full transaction gas (`market_helpers.measure`, the
same method as the DataMarket table); the budgets themselves are enforced on
receipts by tests/integration/test_model_gas_receipts.py. An operation costing
more than 2% above its record in model_gas_budget.json fails; set
DATABRIGHT_RECORD_GAS=1 to rewrite the record after an intended change. A
Markdown table is written to test-artifacts/model-gas.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boa

from tests.unit.contracts.compute._helpers import REPORT as JOB_REPORT
from tests.unit.contracts.compute._helpers import (
    CHECKPOINT,
    COMPUTE_MARKET,
    DELAY,
    MIN_STAKE,
    add_coordinator,
    register_worker,
    submit,
)
from tests.unit.contracts.market_helpers import measure
from tests.unit.contracts.models._helpers import (
    CHALLENGE,
    DIGESTS,
    FEE,
    PRICE,
    create_dataset,
    deploy_pair,
    keyed_account,
    sign,
)

RECORD = Path(__file__).resolve().parent / "model_gas_budget.json"
REPORT = Path(__file__).resolve().parents[4] / "test-artifacts" / "model-gas.md"
TOLERANCE = 1.02
PREDICTIONS = 100
BUDGETS = {"open_channel": 80_000, "redeem (first)": 90_000, "redeem (later)": 90_000}


def run_scenario(data_market: Any, model_market: Any) -> dict[str, int]:
    creator, owner, user = (keyed_account(n) for n in (10, 11, 12))
    dataset = create_dataset(data_market, creator.address)
    with boa.env.prank(user.address):
        data_market.deposit(dataset, value=1)  # a dataset's first payment also sets up its revenue word
    gas: dict[str, int] = {}
    gas["register"] = measure(model_market, owner.address, lambda: model_market.register(
        dataset, *DIGESTS, 900_000, PRICE, 1000, value=FEE))
    model = 1
    gas["publish_version"] = measure(model_market, owner.address, lambda: model_market.publish_version(
        model, *DIGESTS, 910_000))
    with boa.env.prank(user.address):
        model_market.open_channel(model, value=1)  # the first channel, not measured
    gas["open_channel"] = measure(model_market, user.address, lambda: model_market.open_channel(
        model, value=10**16))
    channel = 2
    gas["top_up"] = measure(model_market, user.address, lambda: model_market.top_up(channel, value=10**15))
    first = sign(model_market, user, channel, PREDICTIONS * PRICE)
    gas["redeem (first)"] = measure(model_market, owner.address, lambda: model_market.redeem(
        channel, first.amount, first.signature))
    later = sign(model_market, user, channel, 2 * PREDICTIONS * PRICE)
    gas["redeem (later)"] = measure(model_market, owner.address, lambda: model_market.redeem(
        channel, later.amount, later.signature))
    gas["close"] = measure(model_market, user.address, lambda: model_market.close(channel))
    boa.env.time_travel(seconds=CHALLENGE)
    gas["settle"] = measure(model_market, user.address, lambda: model_market.settle(channel))
    gas["register_from_job"] = _register_from_job(data_market, model_market, dataset, owner.address)
    return gas


def _register_from_job(data_market: Any, model_market: Any, dataset: int, owner: str) -> int:
    """Gas of registering the model a completed ComputeMarket job trained (no fee: the job paid it)."""
    compute_market = boa.load(str(COMPUTE_MARKET), data_market.address, MIN_STAKE, DELAY)
    model_market.link_compute_market(compute_market.address)
    worker, coordinator = (keyed_account(n).address for n in (13, 14))
    register_worker(compute_market, worker, 10**9)
    add_coordinator(compute_market, coordinator)
    job = submit(compute_market, owner, dataset, 10**16, fee=FEE)
    with boa.env.prank(coordinator):
        compute_market.accept_job(job)
        compute_market.complete_job(job, [(worker, 3, 10**9)], [], CHECKPOINT, JOB_REPORT)
    return measure(model_market, owner, lambda: model_market.register_from_job(
        job, dataset, DIGESTS[0], CHECKPOINT, DIGESTS[2], 900_000, PRICE, 1000))


def test_model_gas() -> None:
    with boa.env.anchor():
        gas = run_scenario(*deploy_pair())
    if os.environ.get("DATABRIGHT_RECORD_GAS") == "1" or not RECORD.exists():
        RECORD.write_text(json.dumps(gas, indent=2) + "\n")
    recorded: dict[str, int] = json.loads(RECORD.read_text())
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# ModelMarket gas (full transaction gas, titanoboa / py-evm prague)", "",
             "| operation | gas | recorded | budget |", "| --- | ---: | ---: | ---: |"]
    for op, used in gas.items():
        budget = f"{BUDGETS[op]:,}" if op in BUDGETS else ""
        lines.append(f"| {op} | {used:,} | {recorded.get(op, used):,} | {budget} |")
    REPORT.write_text("\n".join(lines) + "\n")

    for op, budget in BUDGETS.items():
        assert gas[op] <= budget, f"{op}: {gas[op]} > budget {budget}"
    # one redemption per PREDICTIONS predictions
    assert gas["redeem (later)"] / PREDICTIONS <= 1_000
    assert set(gas) == set(recorded), "model_gas_budget.json is out of date"
    regressions = {op: (used, recorded[op]) for op, used in gas.items() if used > recorded[op] * TOLERANCE}
    assert not regressions, f"gas above the recorded table by more than 2%: {regressions}"
