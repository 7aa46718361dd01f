"""``databright channel open|topup|close|settle|list``: payment channels to models."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from databright.cli._common import emit, format_eth, parse_positive_wei, require_funds, table, workspace
from databright.errors import InputError

if TYPE_CHECKING:
    from databright.workspace import Workspace

__all__ = ["register", "signed_record"]

app = typer.Typer(help="Open, fund and close payment channels that pay for predictions.", no_args_is_help=True)


def signed_record(ws: Workspace) -> Any:
    """The record of what this home's accounts have signed, per chain."""
    from databright.models import SignedRecord, signed_record_path

    return SignedRecord(signed_record_path(ws.home.root, ws.ledger.chain_id))


def _own(ws: Workspace, channel_id: int) -> Any:
    channel = ws.model_market.channel(channel_id)
    if channel.user != ws.signer().address:
        raise InputError(f"channel {channel_id} belongs to {channel.user}")
    return channel


@app.command("open")
def open_cmd(
    model_id: Annotated[int, typer.Argument(help="Model to pay.")],
    deposit: Annotated[str, typer.Argument(help="Deposit, e.g. 0.01ether.")],
) -> None:
    """Open a channel to a model with a deposit."""
    wei = parse_positive_wei(deposit)
    with workspace() as ws:
        signer, mm = ws.signer(), ws.model_market
        m = mm.model(model_id)
        require_funds(ws, signer.address, wei)
        channel_id = mm.open_channel(signer, model_id, wei)
    predictions = wei // m.price if m.price else None
    emit({"channel_id": channel_id, "model_id": model_id, "deposit_wei": wei, "predictions": predictions},
         f"Opened channel {channel_id} to model {model_id} with {format_eth(wei)}"
         + (f" ({predictions:,} predictions at the current price)" if predictions is not None else ""))


@app.command("topup")
def topup(
    channel_id: Annotated[int, typer.Argument(help="Channel id.")],
    amount: Annotated[str, typer.Argument(help="Amount to add, e.g. 0.01ether.")],
) -> None:
    """Add to an open channel's deposit."""
    wei = parse_positive_wei(amount)
    with workspace() as ws:
        channel = _own(ws, channel_id)
        if channel.state != "open":
            raise InputError(f"channel {channel_id} is {channel.state}; open a new one")
        require_funds(ws, channel.user, wei)
        ws.model_market.top_up(ws.signer(), channel_id, wei)
        deposit = ws.model_market.channel(channel_id).deposit
    emit({"channel_id": channel_id, "deposit_wei": deposit},
         f"Channel {channel_id} now holds {format_eth(deposit)}")


@app.command("close")
def close(channel_id: Annotated[int, typer.Argument(help="Channel id.")]) -> None:
    """Start closing a channel; settle it after the challenge period to get the rest back."""
    with workspace() as ws:
        channel = _own(ws, channel_id)
        if channel.state != "open":
            raise InputError(f"channel {channel_id} is already {channel.state}")
        closes_at = ws.model_market.close(ws.signer(), channel_id)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(closes_at))
    emit({"channel_id": channel_id, "closes_at": closes_at},
         f"Channel {channel_id} is closing; the owner may redeem until {when}, then run "
         f"'databright channel settle {channel_id}'")


@app.command("settle")
def settle(channel_id: Annotated[int, typer.Argument(help="Channel id.")]) -> None:
    """Refund what a closed channel never paid, once its challenge period is over."""
    with workspace() as ws:
        channel = ws.model_market.channel(channel_id)
        if channel.state != "closing":
            raise InputError(f"channel {channel_id} is {channel.state}; close it first" if channel.state == "open"
                             else f"channel {channel_id} is already settled")
        refund = ws.model_market.settle(ws.signer(), channel_id)
    emit({"channel_id": channel_id, "refund_wei": refund},
         f"Channel {channel_id} settled: {format_eth(refund)} refunded to {channel.user}")


@app.command("list")
def list_cmd() -> None:
    """Your channels: deposit, redeemed, what you have signed and what is refundable."""
    rows: list[dict[str, Any]] = []
    with workspace() as ws:
        address = ws.address_of(ws.account_name)
        record = signed_record(ws)
        mm = ws.model_market
        for c in mm.channels_of(address):
            signed = max(c.redeemed, record.get(mm.address, c.channel_id))
            rows.append({"channel_id": c.channel_id, "model_id": c.model_id, "state": c.state,
                         "deposit_wei": c.deposit, "redeemed_wei": c.redeemed, "signed_wei": signed,
                         "refundable_wei": 0 if c.settled else c.deposit - signed, "closes_at": c.closes_at})
    emit({"user": address, "channels": rows}, table(
        f"Channels of {address}", ["id", "model", "state", "deposit", "redeemed", "signed", "refundable"],
        [(r["channel_id"], r["model_id"], r["state"], format_eth(r["deposit_wei"]), format_eth(r["redeemed_wei"]),
          format_eth(r["signed_wei"]), format_eth(r["refundable_wei"])) for r in rows]))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="channel")
