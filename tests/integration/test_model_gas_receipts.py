"""ModelMarket on real chains: every channel path through the typed client and
its gas read from receipts, on the embedded chain and on anvil.

Both chains must charge the same gas and stay within the model market's
budgets (open <= 80,000; redeem including the royalty deposit <= 90,000). The
table is written to test-artifacts/model-gas-receipts.md with the cost per
prediction at 100 predictions per channel, counted two ways: the owner's
redemption alone (one redeem per 100 predictions) and the channel's whole life
(open + redeem + close + settle).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from databright.chain import (
    ComputeMarket,
    DatasetParams,
    Deployment,
    ModelMarket,
    Payment,
    add_compute_market,
    add_model_market,
    compile_contract,
)
from databright.chain.computemarket import MIN_STAKE
from databright.errors import TransactionError
from databright.models import VoucherDomain
from tests.integration.conftest import Backend

REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "model-gas-receipts.md"
BUDGETS = {"open_channel": 80_000, "redeem (first)": 90_000, "redeem (later)": 90_000}
PREDICTIONS = 100
PRICE = 10**13
_measured: dict[str, dict[str, int]] = {}


def _model_market(b: Backend, cache: Path) -> tuple[ModelMarket, Deployment]:
    bare = Deployment(b.ledger.chain_id, {"DataMarket": {"address": b.market.address}}, {}, "", "")
    deployment = add_model_market(b.ledger, b.accounts[0], bare, cache)
    abi = compile_contract("model_market", cache).abi
    return ModelMarket(b.ledger, deployment.address("ModelMarket"), abi), deployment


def _register_from_job(b: Backend, mm: ModelMarket, deployment: Deployment, cache: Path, dataset: int) -> int:
    """A ComputeMarket added to the deployment (and so linked), a completed job, and its model registered."""
    dm, (owner, submitter, _, _, coordinator, worker) = b.market, b.accounts
    assert mm.compute_market_address() is None
    add_compute_market(b.ledger, owner, deployment, cache)
    cm = ComputeMarket(b.ledger, deployment.address("ComputeMarket"), compile_contract("compute_market", cache).abi)
    assert mm.compute_market_address() == cm.address
    cm.allow_measurement(owner, b"\x4d" * 32)
    cm.register_coordinator(owner, coordinator.address, b"\x4d" * 32, "bafkevidence")
    cm.register_worker(worker, 10**9, MIN_STAKE)
    deadline = int(b.ledger.w3.eth.get_block("latest")["timestamp"]) + 3600
    revenue = dm.revenue_total(dataset)
    job = cm.submit_job(submitter, dataset, "bafkspec", rounds=1, local_steps=1, redundancy=1, budget=10**15,
                        deadline=deadline)
    assert dm.revenue_total(dataset) == revenue + 10**17
    cm.accept_job(coordinator, job)
    checkpoint = b"\xc0" * 32
    cm.complete_job(coordinator, job, [Payment(worker.address, 1, 10**9)], [], checkpoint, "bafkreport")
    receipt = b.ledger.transact(submitter, mm.contract.functions.register_from_job(
        job, dataset, b"\x51" * 32, checkpoint, b"\x53" * 32, 900_000, PRICE, 1_000))
    assert dm.revenue_total(dataset) == revenue + 10**17  # the job's fee, once
    registered, trained, _ = mm.decode_receipt(receipt)
    assert (registered.args["training_fee"], trained.args["job_id"]) == (0, job)
    with pytest.raises(TransactionError, match="job already registered"):
        mm.register_from_job(submitter, job, dataset, b"\x51" * 32, checkpoint, b"\x53" * 32, 900_000, PRICE,
                             1_000)
    return int(receipt["gasUsed"])


def _scenario(b: Backend, mm: ModelMarket, deployment: Deployment, cache: Path) -> dict[str, int]:
    dm, (creator, owner, user, evaluator, _, _) = b.market, b.accounts
    gas: dict[str, int] = {}

    def used(receipt: object) -> int:
        return int(receipt["gasUsed"])  # type: ignore[index]

    dataset = dm.create_dataset(creator, DatasetParams(metadata_digest=b"\x11" * 32, initial_shares=1_000,
                                                       training_fee=10**17, evaluator=evaluator.address))
    dm.deposit(user, dataset, 1)  # a dataset's first payment also sets up its revenue word
    revenue = dm.revenue_total(dataset)
    digests = (b"\x51" * 32, b"\x52" * 32, b"\x53" * 32)
    model = mm.register(owner, dataset, *digests, 900_000, PRICE, 1_000)
    assert dm.revenue_total(dataset) == revenue + 10**17
    gas["register"] = used(b.ledger.transact(owner, mm.contract.functions.register(
        dataset, *digests, 900_000, PRICE, 1_000), value=10**17))
    mm.post_verified_score(evaluator, model, 1, 880_000, b"\x54" * 32)
    assert mm.verification(model, 1).score == 880_000

    mm.open_channel(user, model, 1)  # the first channel, not measured
    receipt = b.ledger.transact(user, mm.contract.functions.open_channel(model), value=10**16)
    gas["open_channel"] = used(receipt)
    channel = mm.channel_count()
    gas["top_up"] = used(mm.top_up(user, channel, 10**15))
    domain = VoucherDomain(b.ledger.chain_id, mm.address)
    first = domain.sign(user, channel, PREDICTIONS * PRICE)
    owner_before = b.ledger.balance(owner.address)
    receipt = mm.redeem(owner, channel, first.amount, first.signature)
    gas["redeem (first)"] = used(receipt)
    fee = used(receipt) * int(receipt["effectiveGasPrice"])
    royalty = PREDICTIONS * PRICE // 10
    assert b.ledger.balance(owner.address) == owner_before + PREDICTIONS * PRICE - royalty - fee
    assert dm.revenue_total(dataset) == revenue + 2 * 10**17 + royalty
    with pytest.raises(TransactionError, match="voucher already redeemed"):
        mm.redeem(owner, channel, first.amount, first.signature)
    later = domain.sign(user, channel, 2 * PREDICTIONS * PRICE)
    gas["redeem (later)"] = used(mm.redeem(owner, channel, later.amount, later.signature))
    gas["close"] = used(b.ledger.transact(user, mm.contract.functions.close(channel)))
    with pytest.raises(TransactionError, match="challenge period running"):
        mm.settle(user, channel)
    b.advance(mm.challenge_period())
    receipt = b.ledger.transact(user, mm.contract.functions.settle(channel))
    gas["settle"] = used(receipt)
    assert mm.decode_receipt(receipt)[0].args["refund"] == 10**16 + 10**15 - 2 * PREDICTIONS * PRICE
    assert mm.channel(channel).state == "settled"
    gas["register_from_job"] = _register_from_job(b, mm, deployment, cache, dataset)
    return gas


def test_model_gas_on_receipts(backend: Backend, contract_cache: Path) -> None:
    gas = _scenario(backend, *_model_market(backend, contract_cache), contract_cache)
    for name, budget in BUDGETS.items():
        assert gas[name] <= budget, f"{name} costs {gas[name]:,} gas, over its budget of {budget:,}"
    assert gas["redeem (later)"] / PREDICTIONS <= 1_000
    _measured[backend.name] = gas
    if len(_measured) == 2:
        embedded, anvil = _measured["embedded"], _measured["anvil"]
        # a voucher's signature differs with the chain id, and with it the
        # calldata's count of zero bytes (4 gas each instead of 16)
        assert {k: v for k, v in embedded.items() if not k.startswith("redeem")} == {
            k: v for k, v in anvil.items() if not k.startswith("redeem")}, "the chains charge different gas"
        for name in ("redeem (first)", "redeem (later)"):
            assert embedded[name] == pytest.approx(anvil[name], abs=12 * 8), name
        life = gas["open_channel"] + gas["redeem (later)"] + gas["close"] + gas["settle"]
        REPORT.parent.mkdir(exist_ok=True)
        lines = ["| operation | gas (receipt) | budget |", "|---|---:|---:|"]
        for name, value in gas.items():
            budget = BUDGETS.get(name)
            lines.append(f"| {name} | {value:,} | {f'{budget:,}' if budget else ''} |")
        lines.append(f"| per prediction, redeem every {PREDICTIONS} | {gas['redeem (later)'] // PREDICTIONS:,} | 1,000 |")
        lines.append(f"| per prediction, whole channel life ({PREDICTIONS}) | {life // PREDICTIONS:,} |  |")
        REPORT.write_text("\n".join(lines) + "\n")
