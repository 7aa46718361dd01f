"""``databright shares`` and ``revenue deposit|withdraw``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from databright.cli._common import emit, format_eth, parse_positive_wei, require_funds, table, workspace
from databright.errors import InputError

__all__ = ["register"]

app = typer.Typer(help="Pay revenue into datasets and withdraw your part.", no_args_is_help=True)


def shares(
    holder: Annotated[str | None, typer.Argument(help="Account name or address (default: --account).")] = None,
) -> None:
    """Shares held per dataset, with revenue withdrawn and withdrawable, and what models trained on
    data you contributed have paid you."""
    from databright.index import contributor_impact

    with workspace() as ws:
        ws.sync()
        address = ws.address_of(holder) if holder else ws.address_of(ws.account_name)
        rows: list[dict[str, Any]] = []
        for h in ws.index.holdings(address):
            dataset = ws.index.dataset(h.dataset_id)
            rows.append({
                "dataset_id": h.dataset_id,
                "name": dataset.name,
                "shares": h.balance,
                "fraction": h.balance / dataset.total_supply if dataset.total_supply else 0.0,
                "withdrawn_wei": h.withdrawn,
                "withdrawable_wei": ws.withdrawable(h.dataset_id, address),
            })
        paid = [{"dataset_id": c.dataset_id, "model_id": c.model_id, "contributed_items": c.contributed_items,
                 "training_fee_wei": c.training_fee_wei, "royalties_wei": c.royalties_wei, "paid_wei": c.paid_wei}
                for c in contributor_impact(ws.index, address)]
    emit(
        {"holder": address, "holdings": rows, "models_paid": paid},
        table(
            f"Shares of {address}",
            ["dataset", "name", "shares", "fraction", "withdrawn", "withdrawable"],
            [(r["dataset_id"], r["name"], r["shares"], f"{r['fraction']:.1%}", format_eth(r["withdrawn_wei"]),
              format_eth(r["withdrawable_wei"])) for r in rows],
        ),
        table(
            "Models trained on data you contributed",
            ["model", "dataset", "your items", "training fee", "royalties"],
            [(p["model_id"], p["dataset_id"], p["contributed_items"], format_eth(p["training_fee_wei"]),
              format_eth(p["royalties_wei"])) for p in paid],
        ),
    )


@app.command("deposit")
def deposit(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")],
    amount: Annotated[str, typer.Argument(help="Amount, e.g. 1ether or 500gwei.")],
) -> None:
    """Pay ETH to a dataset's shareholders, pro rata to their shares."""
    wei = parse_positive_wei(amount)
    with workspace() as ws:
        signer = ws.signer()
        ws.sync()
        ws.index.dataset(dataset_id)
        require_funds(ws, signer.address, wei)
        ws.market.deposit(signer, dataset_id, wei)
        ws.sync()
        total = ws.index.dataset(dataset_id).revenue_total
    emit(
        {"dataset_id": dataset_id, "amount_wei": wei, "revenue_total_wei": total},
        f"Paid {format_eth(wei)} to the shareholders of dataset {dataset_id} (total {format_eth(total)})",
    )


@app.command("withdraw")
def withdraw(dataset_id: Annotated[int, typer.Argument(help="Dataset id.")]) -> None:
    """Withdraw your share of a dataset's revenue."""
    with workspace() as ws:
        signer = ws.signer()
        ws.sync()
        ws.index.dataset(dataset_id)
        available = ws.market.withdrawable(dataset_id, signer.address)
        if available == 0:
            raise InputError(f"{signer.address} has nothing to withdraw from dataset {dataset_id}")
        amount = ws.market.withdraw(signer, dataset_id)
        ws.sync()
    emit(
        {"dataset_id": dataset_id, "holder": signer.address, "amount_wei": amount},
        f"Withdrew {format_eth(amount)} from dataset {dataset_id} to {signer.address}",
    )


def register(root: typer.Typer) -> None:
    root.command()(shares)
    root.add_typer(app, name="revenue")
