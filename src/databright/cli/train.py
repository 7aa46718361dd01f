"""``databright train DATASET``: train a model on a dataset's accepted items, and register it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from databright.cli._common import emit, format_eth, parse_wei, workspace
from databright.errors import InputError

if TYPE_CHECKING:
    from databright.compute._jobspec import JobSettings, Verification

__all__ = ["register"]


def train_cmd(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")],
    spec: Annotated[Path | None, typer.Option(help="Model spec JSON (default: the dataset's own).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the spec's pretrain_steps).")] = None,
    register_: Annotated[bool, typer.Option("--register", help="Register the trained model.")] = False,
    price: Annotated[str | None, typer.Option(help="Price per prediction when registering, e.g. 10gwei.")] = None,
    royalty: Annotated[str | None, typer.Option(help="Royalty to the dataset when registering, e.g. 10%.")] = None,
    on_market: Annotated[bool, typer.Option("--on-market", help="Train as a ComputeMarket job on paid workers.")] = False,
    redundancy: Annotated[int, typer.Option(help="With --on-market: replicas per task, 1 or 3.")] = 3,
    budget: Annotated[str | None, typer.Option(help="With --on-market: budget in escrow for the workers, e.g. 1ether.")] = None,
    rounds: Annotated[int, typer.Option(help="With --on-market: federated-averaging rounds.")] = 2,
    max_exposure: Annotated[str, typer.Option(help="With --on-market: most of the dataset one worker may see.")] = "5%",
    workers: Annotated[int | None, typer.Option(help="With --on-market: also run a coordinator and this many "
                                                "logical workers in this process.")] = None,
    timeout: Annotated[float, typer.Option(help="With --on-market: seconds to wait for the job.")] = 3600.0,
    worker_fee: Annotated[str, typer.Option(help="With --workers: the logical workers' minimum fee per task.")] = "0",
    verification: Annotated[str | None, typer.Option(help="With --on-market: tmr, optimistic or none (default: tmr "
                                                     "for redundancy 3, none for 1).")] = None,
    snapshot_every: Annotated[int | None, typer.Option(help="With --verification optimistic: steps per committed "
                                                       "segment (default: at most 32 segments a task).")] = None,
    samples: Annotated[int | None, typer.Option(help="With --verification optimistic: segments re-executed per "
                                                "task (default: catch 10% faked with 99%).")] = None,
    split: Annotated[int, typer.Option(help="With --on-market: cut the model into this many pieces, each "
                                       "trained by a different worker.")] = 1,
) -> None:
    """Train deterministically on the accepted items, score on the validation split, write the report."""
    from databright.cli.model import parse_royalty, register_trained
    from databright.ml import ModelSpec
    from databright.models import train_model

    if register_ and (price is None or royalty is None):
        raise InputError("--register needs --price and --royalty")
    if not register_ and (price is not None or royalty is not None):
        raise InputError("--price and --royalty only apply with --register")
    wei = parse_wei(price) if price is not None else 0
    bps = parse_royalty(royalty) if royalty is not None else 0
    if steps is not None and steps < 1:
        raise InputError("--steps must be positive")
    if on_market and budget is None:
        raise InputError("--on-market needs --budget")
    if not on_market and (budget is not None or workers is not None or split != 1):
        raise InputError("--budget, --workers and --split only apply with --on-market")
    settings = _job_settings(on_market, redundancy, verification, snapshot_every, samples)
    if spec is not None:
        try:
            chosen = ModelSpec.from_json(spec.read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read {spec}: {exc.strerror}") from exc
    with workspace() as ws:
        ws.sync()
        meta = json.loads(ws.index.dataset(dataset_id).metadata_json or "{}")
        if "validation" not in meta:
            raise InputError(f"dataset {dataset_id} publishes no validation split to score a model on")
        if spec is None:
            if "model_spec" not in meta:
                raise InputError(f"dataset {dataset_id} publishes no model spec; pass --spec")
            chosen = ModelSpec.from_json(json.dumps(meta["model_spec"]))
        if on_market:
            settings = split_settings(chosen, split, redundancy, settings)
            job, said = _on_market(ws, dataset_id, chosen, steps, redundancy, parse_wei(str(budget)), rounds,
                                   parse_royalty(max_exposure), workers, timeout, parse_wei(worker_fee), settings)
            if register_:
                job.update(_register_job(ws, dataset_id, job, wei, bps))
                again = (f"; training fee {format_eth(int(job['training_fee_wei']))} paid again (this "
                         "deployment's ModelMarket cannot read jobs)" if job["training_fee_wei"] else
                         "; no second training fee")
                said.append(f"Registered model {job['model_id']} with job {job['job_id']}'s report as its "
                            f"training receipt, coordinator-verified score {job['score']:.2%}{again}")
            emit(job, *said)
            return
        proposals = ws.index.proposals(dataset_id=dataset_id, status="accepted")
        accepted = [p.manifest_cid for p in sorted(proposals, key=lambda p: p.entry_index or 0)]
        trained = train_model(ws.store, dataset_id, chosen, accepted, str(meta["validation"]), seed=seed,
                              steps=steps)
        out: dict[str, Any] = {"dataset_id": dataset_id, "report": trained.report_cid, "checkpoint": trained.checkpoint_cid,
               "spec": trained.spec_cid, "score": trained.score, "items": trained.items}
        lines = [f"Trained on {trained.items} items of dataset {dataset_id}: validation accuracy "
                 f"{trained.score:.2%}", f"report: {trained.report_cid}"]
        if register_:
            out.update(register_trained(ws, dataset_id, trained.report_cid, wei, bps))
            lines.append(f"Registered model {out['model_id']}: {format_eth(wei)} per prediction, "
                         f"{bps / 100:g}% royalty, training fee {format_eth(int(out['training_fee_wei']))} paid")
    emit(out, *lines)


def _job_settings(on_market: bool, redundancy: int, verification: str | None, snapshot_every: int | None,
                  samples: int | None) -> JobSettings | None:
    """The job's verification settings; misused options are usage errors (exit 2)."""
    from databright.compute._jobspec import JobSettings

    given = {"--verification": verification, "--snapshot-every": snapshot_every, "--samples": samples}
    if not on_market and any(v is not None for v in given.values()):
        raise typer.BadParameter("only applies with --on-market",
                                 param_hint=next(k for k, v in given.items() if v is not None))
    if verification is None and snapshot_every is None and samples is None:
        return None
    if verification is None:
        verification = "tmr" if redundancy == 3 else "none"
    if verification not in ("tmr", "optimistic", "none"):
        raise typer.BadParameter(f"is tmr, optimistic or none, not {verification!r}", param_hint="--verification")
    if verification != "optimistic" and (snapshot_every is not None or samples is not None):
        raise typer.BadParameter("--snapshot-every and --samples apply to --verification optimistic only",
                                 param_hint="--verification")
    for hint, value in (("--snapshot-every", snapshot_every), ("--samples", samples)):
        if value is not None and value < 1:
            raise typer.BadParameter(f"must be at least 1, not {value}", param_hint=hint)
    wanted = 3 if verification == "tmr" else 1
    if redundancy != wanted:
        raise typer.BadParameter(f"{verification} verification needs --redundancy {wanted}",
                                 param_hint="--verification")
    return JobSettings(cast("Verification", verification), snapshot_every=snapshot_every or 0, samples=samples or 0)


def split_settings(spec: Any, split: int, redundancy: int, base: JobSettings | None = None) -> JobSettings | None:
    """``base`` with the split ``--split`` asks for (None: neither); a model that cannot be cut so is a usage error."""
    from dataclasses import replace

    from databright.compute._jobspec import JobSettings
    from databright.compute._splitting import cut_spec

    if split == 1:
        return base
    try:
        if split < 1:
            raise InputError(f"split={split}: a model is cut into at least one piece")
        cut_spec(spec, split)
        return replace(base or JobSettings.for_redundancy(redundancy), split=split)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--split'") from None


def _on_market(ws: Any, dataset_id: int, spec: Any, steps: int | None, redundancy: int, budget: int, rounds: int,
               exposure_bps: int, workers: int | None, timeout: float, worker_fee: int,
               settings: JobSettings | None = None) -> tuple[dict[str, Any], list[str]]:
    from databright.cli._train_market import JobRequest, train_on_market

    local_steps = steps if steps is not None else max(1, spec.pretrain_steps // max(rounds, 1))
    result = train_on_market(ws, JobRequest(dataset_id, spec.to_json(), rounds, local_steps, redundancy,
                                            exposure_bps, budget, 86_400, timeout, settings), workers,
                             worker_fee=worker_fee)
    out: dict[str, Any] = {"dataset_id": dataset_id, "job_id": result.job_id, "report": result.report_cid,
                           "checkpoint": result.checkpoint_cid, "spec": result.spec_cid, "score": result.score,
                           "paid_wei": result.paid, "refunded_wei": result.refunded,
                           "job_training_fee_wei": result.training_fee, "slashed": result.slashed}
    lines = [f"Job {result.job_id} completed: validation accuracy {result.score:.2%} (verified by the coordinator)",
             f"workers paid {format_eth(result.paid)}, refunded {format_eth(result.refunded)}, "
             f"{len(result.slashed)} slashed; training fee {format_eth(result.training_fee)} to the shareholders",
             f"report: {result.report_cid}"]
    if result.split is not None:
        out["split"] = result.split
        lines.extend(split_lines(result.split))
    return out, lines


def split_lines(split: dict[str, Any]) -> list[str]:
    """How a split job's model was cut, and which worker held which piece of each accepted pipeline."""
    pieces = split["pieces"]
    def span(p: dict[str, Any]) -> str:
        last = p["first_layer"] + len(p["layers"]) - 1
        return f"layer {last}" if last == p["first_layer"] else f"layers {p['first_layer']}-{last}"

    lines = [f"model cut into {len(pieces)} pieces: " + "; ".join(
        f"piece {p['stage']} = {span(p)} ({', '.join(p['layers'])}), {p['params']} parameters" for p in pieces)]
    for pipeline in split["pipelines"]:
        held = ", ".join(f"piece {s['stage']} on {s['worker']}" for s in pipeline["stages"])
        state = "accepted" if pipeline["status"] == "submitted" else pipeline["status"]
        lines.append(f"round {pipeline['round'] + 1} task {pipeline['task']} ({state}): {held}"
                     + (f" - {pipeline['failure']}" if pipeline["status"] == "failed" else ""))
    return lines


def _register_job(ws: Any, dataset_id: int, out: dict[str, Any], price: int, bps: int) -> dict[str, Any]:
    from databright.cli.model import register_model

    registered = register_model(ws, dataset_id, out["spec"], out["checkpoint"], out["report"], out["score"], price, bps,
                                job_id=int(out["job_id"]))
    return {k: v for k, v in registered.items() if k not in out}


def register(root: typer.Typer) -> None:
    root.command("train")(train_cmd)
