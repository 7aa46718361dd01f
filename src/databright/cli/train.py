"""``databright train DATASET``: train a model on a dataset's accepted items, and register it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from databright.cli._common import emit, format_eth, parse_wei, workspace
from databright.errors import InputError

__all__ = ["register"]


def train_cmd(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")],
    spec: Annotated[Path | None, typer.Option(help="Model spec JSON (default: the dataset's own).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the spec's pretrain_steps).")] = None,
    register_: Annotated[bool, typer.Option("--register", help="Register the trained model.")] = False,
    price: Annotated[str | None, typer.Option(help="Price per prediction when registering, e.g. 10gwei.")] = None,
    royalty: Annotated[str | None, typer.Option(help="Royalty to the dataset when registering, e.g. 10%.")] = None,
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


def register(root: typer.Typer) -> None:
    root.command("train")(train_cmd)
