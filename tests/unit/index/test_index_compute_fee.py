"""The index names ComputeMarket's training fee, paid into the dataset by submit_job, as a training fee,
and counts it as the fee of the model registered from the job."""

from __future__ import annotations

from pathlib import Path

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
from databright.index import dataset_impact, model_income, revenue_by_source
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


def test_a_model_registered_from_a_job_is_credited_with_the_jobs_fee(world: World, tmp_path: Path,
                                                                     contract_cache: Path) -> None:
    ledger, dm = world.ledger, world.market
    creator, submitter, coordinator, worker = ACCOUNTS
    bare = Deployment(ledger.chain_id, {"DataMarket": {"address": dm.address}}, {}, "", "")
    deployment = add_model_market(ledger, creator, add_compute_market(ledger, creator, bare, contract_cache),
                                  contract_cache)
    cm = ComputeMarket(ledger, deployment.address("ComputeMarket"),
                       compile_contract("compute_market", contract_cache).abi)
    mm = ModelMarket(ledger, deployment.address("ModelMarket"), compile_contract("model_market", contract_cache).abi)
    assert mm.compute_market_address() == cm.address  # add_model_market linked it
    dataset = dm.create_dataset(creator, DatasetParams(metadata_digest=b"\x05" * 32, initial_shares=1_000,
                                                       training_fee=FEE))
    cm.allow_measurement(creator, b"\x4d" * 32)
    cm.register_coordinator(creator, coordinator.address, b"\x4d" * 32, "bafkevidence")
    cm.register_worker(worker, 10**9, MIN_STAKE)
    deadline = int(ledger.w3.eth.get_block("latest")["timestamp"]) + 3600
    job = cm.submit_job(submitter, dataset, "bafkspec", rounds=1, local_steps=1, redundancy=1, budget=10**15,
                        deadline=deadline)
    # shares that move after the job paid its fee earn nothing of it
    dm.transfer(creator, worker.address, dataset, 250)
    cm.accept_job(coordinator, job)
    cm.complete_job(coordinator, job, [Payment(worker.address, 1, 10**9)], [], b"\xc0" * 32, "bafkreport")
    model = mm.register_from_job(submitter, job, dataset, b"\x51" * 32, b"\xc0" * 32, b"\x53" * 32, 900_000,
                                 10**9, 1_000)
    assert mm.job_model(job) == model

    index = world.index(tmp_path / "index.sqlite")
    index.sync(dm, world.loaders(), models=mm, compute=cm)
    assert revenue_by_source(index, dataset)["training_fee"] == FEE  # paid once, by the job
    [impact] = dataset_impact(index, dataset)
    assert (impact.model_id, impact.training_fee_wei) == (model, FEE)
    assert [(r.holder, r.training_fee) for r in model_income(index, model)] == [(creator.address, FEE)]
    index.close()
