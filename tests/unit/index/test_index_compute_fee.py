"""The index names ComputeMarket's training fee, paid into the dataset by submit_job, as a training fee."""

from __future__ import annotations

from pathlib import Path

from databright.chain import ComputeMarket, DatasetParams, Deployment, add_compute_market, compile_contract
from databright.index import revenue_by_source
from tests.unit.index.conftest import ACCOUNTS, World

FEE = 10**16


def test_submit_job_training_fee_is_attributed_to_training_fee(world: World, tmp_path: Path,
                                                               contract_cache: Path) -> None:
    ledger = world.ledger
    bare = Deployment(ledger.chain_id, {"DataMarket": {"address": world.market.address}}, {}, "", "")
    deployment = add_compute_market(ledger, ACCOUNTS[0], bare, contract_cache)
    cm = ComputeMarket(ledger, deployment.address("ComputeMarket"),
                       compile_contract("compute_market", contract_cache).abi)
    dataset = world.market.create_dataset(ACCOUNTS[0], DatasetParams(metadata_digest=b"\x05" * 32,
                                                                     initial_shares=1_000, training_fee=FEE))
    deadline = int(ledger.w3.eth.get_block("latest")["timestamp"]) + 3600
    job = cm.submit_job(ACCOUNTS[1], dataset, "bafkspec", rounds=1, local_steps=1, redundancy=1, budget=10**15,
                        deadline=deadline)

    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders(), compute=cm)
    revenue = revenue_by_source(index, dataset)
    assert revenue["training_fee"] == FEE and revenue["payment"] == 0
    [row] = [r for r in index.revenue(dataset) if r.source == "training_fee"]
    assert row.source_id == job and row.account.lower() == cm.address.lower()
    # Without the ComputeMarket's events the same deposit is only a payment.
    plain = world.index(tmp_path / "plain.sqlite")
    plain.sync(world.market, world.loaders())
    assert revenue_by_source(plain, dataset)["payment"] == FEE
    index.close()
    plain.close()
