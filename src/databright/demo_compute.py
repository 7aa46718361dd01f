"""The demo's compute round: a model trained on the compute market, one cheat caught and slashed.

A data scientist submits a ComputeMarket job on the grown dataset with
redundancy 3: the budget goes into escrow and the dataset's training fee to
its shareholders in the same transaction. The home's operator runs a
coordinator (software attestation: trust rests on the operator) and logical
workers on loopback, each staked on chain; one of them returns perturbed
weights. Its result disagrees with the other two replicas, the task is re-run
on a fresh worker, the majority result is used and the cheat loses its stake.
The job's checkpoint (its digest checked against the one complete_job
recorded) is registered as a model with the job report as its receipt,
from the job: ModelMarket checks the job on chain and charges no second
training fee.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databright.workspace import Workspace

__all__ = ["ComputeRound", "compute_round"]

WORKERS = 12  # 3 shards x 3 replicas, and fresh workers for the re-run the cheat causes
WORKER_FEE = 10**12  # wei per task
BUDGET = 10**17
EXPOSURE_BPS = 3400  # a third of the dataset per worker: 3 shards (the 5% default needs 60 workers)
LOCAL_STEPS = 20


@dataclass
class ComputeRound:
    job_id: int
    model_id: int
    score: float
    workers: int
    paid_tasks: int
    paid_wei: int
    refunded_wei: int
    training_fee_wei: int  # paid by the job
    registration_fee_wei: int  # paid again when registering its model: 0 unless ModelMarket cannot read jobs
    # Per slashed worker: its address, why, the evidence CID and the stake it lost.
    slashed: list[dict[str, Any]]
    seconds: float  # wall time of the round, submission to registration


def compute_round(ws: Workspace, dataset_id: int, scientist: Any, operator: Any, price: int, royalty_bps: int,
                  progress: Callable[[str], None]) -> ComputeRound:
    from databright.cli._train_market import JobRequest, train_on_market
    from databright.cli.model import register_model
    from databright.ml import ModelSpec

    started = time.perf_counter()
    meta = json.loads(ws.index.dataset(dataset_id).metadata_json)
    spec = ModelSpec.from_json(json.dumps(meta["model_spec"]))
    stake = ws.compute_market.min_stake()
    request = JobRequest(dataset_id, spec.to_json(), 1, LOCAL_STEPS, 3, EXPOSURE_BPS, BUDGET, 86_400, 600.0)
    result = train_on_market(ws, request, WORKERS, worker_fee=WORKER_FEE, submitter=scientist, operator=operator,
                             byzantine=1)
    cm = ws.compute_market
    slashed = [{"worker": s["worker"], "reason": s["reason"], "evidence": s["evidence"],
                "lost_wei": stake - cm.worker(s["worker"]).stake} for s in result.slashed]
    registered = register_model(ws, dataset_id, result.spec_cid, result.checkpoint_cid, result.report_cid,
                                result.score, price, royalty_bps, job_id=result.job_id, signer=scientist)
    model_id = int(registered["model_id"])
    ws.sync()
    done = ComputeRound(result.job_id, model_id, result.score, WORKERS, result.paid // WORKER_FEE, result.paid,
                        result.refunded, result.training_fee, int(registered["training_fee_wei"]), slashed,
                        time.perf_counter() - started)
    progress(f"compute job {done.job_id}: {WORKERS} logical workers, redundancy 3, one returning perturbed weights; "
             f"{done.paid_tasks} tasks paid {done.paid_wei / 1e18:g} ETH, {len(slashed)} worker slashed "
             f"({sum(s['lost_wei'] for s in slashed) / 1e18:g} ETH stake), training fee "
             f"{done.training_fee_wei / 1e18:g} ETH to the shareholders; registered as model {model_id} "
             f"({'no second training fee' if not done.registration_fee_wei else 'training fee paid again'}, "
             f"accuracy {done.score:.2%}, verified by the coordinator) in {done.seconds:.1f} s")
    return done
