"""``databright compute serving submit|show|settle``: serving jobs, where workers answer a model's predictions."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from databright.cli._common import emit, format_eth, parse_duration, parse_wei, state, table, workspace
from databright.errors import InputError

__all__ = ["serving_app"]

serving_app = typer.Typer(help="Serving jobs: compute-market workers answer a model's predictions, "
                               "checked against each other, paid per prediction.", no_args_is_help=True)


@serving_app.command("submit")
def submit_cmd(
    model_id: Annotated[int, typer.Argument(help="The model to serve (its latest version); you must own it.")],
    budget: Annotated[str, typer.Option(help="Escrowed for the workers, e.g. 0.01ether; the rest comes back.")],
    fee: Annotated[str, typer.Option(help="A worker's pay per prediction answered in agreement, e.g. 1gwei.")],
    redundancy: Annotated[int, typer.Option(help="Workers per request: 3, or 1 spot-checked by the "
                                                 "coordinator.")] = 3,
    deadline: Annotated[str, typer.Option(help="When the job expires and refunds you, e.g. 1d.")] = "1d",
) -> None:
    """Escrow a serving budget for a model you own (no training fee: the channel's price pays the royalty)."""
    from databright.cli._serve_market import submit_serving

    wei, per, seconds = parse_wei(budget), parse_wei(fee), parse_duration(deadline)
    if redundancy not in (1, 3):
        raise InputError(f"--redundancy is 1 or 3, got {redundancy}")
    if wei <= 0 or per <= 0:
        raise InputError("--budget and --fee must be positive")
    with workspace() as ws:
        job_id = submit_serving(ws, ws.signer(), model_id, fee=per, redundancy=redundancy, budget=wei,
                                deadline_s=seconds)
    emit({"job_id": job_id, "model_id": model_id, "budget_wei": wei, "fee_per_prediction_wei": per,
          "redundancy": redundancy},
         f"Serving job {job_id} for model {model_id}: {format_eth(wei)} escrowed, {format_eth(per)} per prediction, "
         f"redundancy {redundancy}; serve with 'databright model serve {model_id} --coordinator URL "
         f"--serving-job {job_id}'")


@serving_app.command("show")
def show_cmd(
    job_id: Annotated[int, typer.Argument(help="Serving job id.")],
    coordinator: Annotated[Optional[str], typer.Option(help="Also ask this coordinator (URL) for its per-worker "
                                                            "counts.")] = None,
) -> None:
    """A serving job's terms and state on chain: escrow, payments and slashes (and the coordinator's counts)."""
    with workspace() as ws:
        cm = ws.compute_market
        terms, job = cm.serving(job_id), cm.job(job_id)
        paid: list[dict[str, Any]] = []
        slashed: list[dict[str, Any]] = []
        for event in cm.events(0, ws.ledger.w3.eth.block_number):
            args = event.args
            if event.name not in ("WorkerPaid", "WorkerSlashed") or int(args["job_id"]) != job_id:
                continue
            if event.name == "WorkerPaid":
                paid.append({"worker": args["worker"], "predictions": int(args["tasks"]),
                             "amount_wei": int(args["amount"])})
            else:
                slashed.append({"worker": args["worker"], "amount_wei": int(args["amount"]),
                                "evidence": str(args["evidence_cid"])})
    counts: dict[str, Any] | None = None
    if coordinator is not None:
        counts = _coordinator_status(coordinator, job_id)
    out = {"job_id": job_id, "model_id": terms.model_id, "version": terms.version,
           "fee_per_prediction_wei": terms.fee_per_prediction, "redundancy": job.redundancy,
           "budget_wei": job.budget, "status": job.status.name.lower(), "owner": job.submitter,
           "coordinator": job.coordinator, "paid_wei": job.paid, "refunded_wei": job.refunded,
           "compensation_wei": job.compensation, "report": job.report_cid or None, "payments": paid,
           "slashes": slashed, "coordinator_status": counts}
    rows = [(p["worker"], str(p["predictions"]), format_eth(p["amount_wei"]), "") for p in paid]
    rows += [(s["worker"], "", "", f"slashed {format_eth(s['amount_wei'])} ({s['evidence']})") for s in slashed]
    emit(out, f"Serving job {job_id}: model {terms.model_id} version {terms.version}, {job.status.name.lower()}, "
              f"{format_eth(job.budget)} budget, {format_eth(terms.fee_per_prediction)} per prediction",
         table("workers", ["worker", "predictions paid", "earned", "slashed"], rows))


def _coordinator_status(url: str, job_id: int) -> dict[str, Any]:
    import httpx

    from databright.errors import ComputeError

    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/serving/jobs/{job_id}", timeout=10)
    except httpx.HTTPError as exc:
        raise ComputeError(f"coordinator {url} unreachable: {exc}") from exc
    if response.status_code != 200:
        raise ComputeError(f"coordinator {url}: {response.text[:200]}")
    data: dict[str, Any] = response.json()
    return data


@serving_app.command("settle")
def settle_cmd(
    job_id: Annotated[int, typer.Argument(help="Serving job id.")],
    db: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the coordinator database.")] = None,
) -> None:
    """As the job's coordinator: complete it on chain, paying each worker per agreed prediction and
    slashing each odd one out; the rest of the budget goes back to the model's owner."""
    from databright.compute import RequestDomain, ServingDesk, ServingLink, connect

    engine = connect(db or f"sqlite:///{state.home_dir / 'coordinator.sqlite'}")
    try:
        with workspace() as ws:
            cm = ws.compute_market
            desk = ServingDesk(engine, ws.store, RequestDomain(ws.ledger.chain_id, cm.address))
            tx = ServingLink(desk, cm, ws.model_market, ws.signer()).settle(job_id)
            job = cm.job(job_id)
    finally:
        engine.dispose()
    emit({"job_id": job_id, "tx": tx, "paid_wei": job.paid, "refunded_wei": job.refunded,
          "compensation_wei": job.compensation},
         f"Serving job {job_id} settled ({tx}): workers paid {format_eth(job.paid)}, "
         f"{format_eth(job.refunded + job.compensation)} back to the owner")
