"""Helpers shared by the ComputeMarket contract tests (titanoboa)."""

from __future__ import annotations

from typing import Any

import boa

from tests.unit.contracts.models._helpers import CONTRACTS, DATA_MARKET, ETHER, create_dataset

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
    "CHECKPOINT", "COMPUTE_MARKET", "DELAY", "ETHER", "EVIDENCE", "MEASUREMENT", "MIN_STAKE", "REPORT",
    "SPEC", "TRAINING_FEE", "ZERO", "add_coordinator", "create_dataset", "deploy_markets", "funded",
    "register_worker", "submit",
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
