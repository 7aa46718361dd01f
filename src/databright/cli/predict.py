"""``databright predict MODEL FILE…``: buy predictions through a payment channel."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from databright.cli._common import emit, format_eth, parse_wei, table, workspace
from databright.errors import InputError

if TYPE_CHECKING:
    from databright.workspace import Workspace

__all__ = ["register"]


def _server_url(ws: Workspace, model_id: int) -> str:
    from databright.models import announced_url

    url = announced_url(ws.home.root, ws.ledger.chain_id, model_id)
    if url is None:
        raise InputError(f"no prediction server for model {model_id} runs for this home; pass --url")
    return url


def _rows(files: list[Path]) -> list[dict[str, Any]]:
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for path in files:
        try:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read table rows from {path}: {exc}") from exc
        rows += json.loads(frame.to_json(orient="records"))
    return rows


def _ask_deposit(model_id: int, cost: int) -> int:
    if not sys.stdin.isatty():
        raise InputError(f"no open channel to model {model_id} can pay {format_eth(cost)}; pass --deposit AMOUNT")
    answer = typer.prompt(f"No open channel to model {model_id} can pay {format_eth(cost)}. Deposit to open one",
                          default=str(cost * 100))
    return parse_wei(answer)


def predict(
    model_id: Annotated[int, typer.Argument(help="Model id.")],
    files: Annotated[list[Path], typer.Argument(help="Image files, or CSV/Parquet tables of rows.")],
    url: Annotated[str | None, typer.Option(help="Prediction server (default: the one serving this home).")] = None,
    deposit: Annotated[str | None, typer.Option(help="Open a channel with this deposit if none can pay.")] = None,
    channel: Annotated[int | None, typer.Option(help="Pay through this channel.")] = None,
) -> None:
    """Predict files with a registered model, paying per prediction through a channel."""
    from databright.models import PredictionClient

    from databright.cli.channel import signed_record

    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise InputError(f"no such file: {missing[0]}")
    with workspace() as ws:
        client = PredictionClient(url or _server_url(ws, model_id), ws.model_market, ws.signer(), signed_record(ws))
        try:
            info = client.info(model_id)
            rows = _rows(files) if info["input"] == "table" else []
            count = len(rows) or len(files)
            cost = int(info["price"]) * count
            wei = parse_wei(deposit) if deposit is not None else None
            if info["payments"] and cost and channel is None and wei is None:
                if not any(client.spendable(c) >= cost for c in client.channels(model_id)):
                    wei = _ask_deposit(model_id, cost)
            result = client.predict(model_id, files=[] if rows else files, rows=rows, channel=channel, deposit=wei)
        finally:
            client.close()
    names = [p.name for p in files] if not rows else [f"row {i + 1}" for i in range(len(rows))]
    paid = (f"paid {format_eth(result.paid)} through channel {result.channel} ({format_eth(result.total)} signed in "
            "total)" if result.channel else "free")
    emit({"model_id": model_id, "version": result.version, "channel": result.channel, "paid_wei": result.paid,
          "signed_wei": result.total,
          "predictions": [{"input": n, **p} for n, p in zip(names, result.predictions, strict=True)]},
         table(f"Model {model_id} (version {result.version}): {paid}", ["input", "label", "confidence"],
               [(n, p["label"], f"{p['confidence']:.3f}") for n, p in zip(names, result.predictions, strict=True)]))


def register(root: typer.Typer) -> None:
    root.command()(predict)
