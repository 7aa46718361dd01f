"""Helpers shared by the ComputeMarket contract tests (titanoboa)."""

from __future__ import annotations

from typing import Any

import boa

from tests.unit.contracts.models._helpers import CONTRACTS, DATA_MARKET, ETHER, MODEL_MARKET, create_dataset

COMPUTE_MARKET = CONTRACTS / "compute_market.vy"
MIN_STAKE = 10**17
DELAY = 7 * 24 * 3600
TRAINING_FEE = 10**16
MEASUREMENT = b"\x4d" * 32
EVIDENCE = "bafkreievidence"
SPEC = "bafkreispec"
REPORT = "bafkreireport"
CHECKPOINT = b"\xc0" * 32
ZERO = "0x" + "00" * 20

__all__ = [
    "CHECKPOINT", "COMPUTE_MARKET", "DELAY", "ETHER", "EVIDENCE", "MEASUREMENT", "MIN_STAKE", "MODEL_MARKET", "REPORT",
    "SPEC", "TRAINING_FEE", "ZERO", "add_coordinator", "create_dataset", "deploy_markets", "funded",
    "deploy_with_models", "register_model", "register_worker", "submit", "submit_serving",
]


def funded(name: str, balance: int = 1000 * ETHER) -> str:
    address: str = boa.env.generate_address(name)
    boa.env.set_balance(address, balance)
    return address


def deploy_markets(min_stake: int = MIN_STAKE, delay: int = DELAY) -> tuple[Any, Any]:
    data_market = boa.load(str(DATA_MARKET))
    return data_market, boa.load(str(COMPUTE_MARKET), data_market.address, min_stake, delay)


def register_worker(compute_market: Any, worker: str, min_fee: int, stake: int = MIN_STAKE) -> None:
    with boa.env.prank(worker):
        compute_market.register_worker(min_fee, value=stake)


def add_coordinator(compute_market: Any, key: str, measurement: bytes = MEASUREMENT) -> None:
    """Allow-list the measurement (if it is not yet) and register the key, as the owner."""
    with boa.env.prank(compute_market.owner()):
        if not compute_market.allowed_measurements(measurement):
            compute_market.allow_measurement(measurement)
        compute_market.register_coordinator(key, measurement, EVIDENCE)


def submit(compute_market: Any, submitter: str, dataset: int, budget: int, fee: int = TRAINING_FEE,
           deadline: int | None = None, redundancy: int = 1) -> int:
    if deadline is None:
        deadline = int(boa.env.evm.patch.timestamp) + DELAY // 2
    with boa.env.prank(submitter):
        job_id: int = compute_market.submit_job(dataset, SPEC, 3, 5, redundancy, 500, budget, deadline,
                                                value=budget + fee)
    return job_id


def deploy_with_models(min_stake: int = MIN_STAKE, delay: int = DELAY) -> tuple[Any, Any, Any]:
    """DataMarket, ComputeMarket and a ModelMarket that ComputeMarket serves models of."""
    data_market, compute_market = deploy_markets(min_stake, delay)
    model_market = boa.load(str(MODEL_MARKET), data_market.address, 3600)
    with boa.env.prank(compute_market.owner()):
        compute_market.set_model_market(model_market.address)
    return data_market, compute_market, model_market


def register_model(model_market: Any, owner: str, dataset: int, fee: int = TRAINING_FEE) -> int:
    with boa.env.prank(owner):
        model_id: int = model_market.register(dataset, b"\x51" * 32, b"\x52" * 32, b"\x53" * 32, 900_000,
                                              10**13, 1000, value=fee)
    return model_id


def submit_serving(compute_market: Any, owner: str, model_id: int, budget: int, fee_per_prediction: int,
                   redundancy: int = 3, deadline: int | None = None) -> int:
    if deadline is None:
        deadline = int(boa.env.evm.patch.timestamp) + DELAY // 2
    with boa.env.prank(owner):
        job_id: int = compute_market.submit_serving(model_id, fee_per_prediction, redundancy, budget, deadline,
                                                    value=budget)
    return job_id
