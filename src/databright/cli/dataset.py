"""``databright dataset create|list|show|items|export``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from databright.cli._common import (
    CURSOR_HELP,
    LIMIT_HELP,
    check_page_limit,
    console,
    cursor_usage,
    emit,
    format_eth,
    parse_duration,
    parse_percent,
    parse_wei,
    safe,
    table,
    workspace,
)
from databright.cli._progress import FROM_HELP, item_progress
from databright.cli._text import text_previews
from databright.errors import InputError

__all__ = ["register"]

app = typer.Typer(help="Create, browse and export datasets.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    description: Annotated[str, typer.Option(help="What the data is and what it is for.")] = "",
    kind: Annotated[
        str, typer.Option(help="files (one file per item), table (one row per item) or text; default: the seed's.")
    ] = "",
    paired: Annotated[bool, typer.Option(help="A text dataset of source/target pairs (default: as the seed).")] = False,
    classes: Annotated[str, typer.Option(help="Comma-separated label set; empty allows any label.")] = "",
    license_: Annotated[str, typer.Option("--license", help="Licence of the data.")] = "CC-BY-4.0",
    initial_shares: Annotated[int, typer.Option(help="Shares minted to you, the initiator.")] = 1000,
    quorum: Annotated[str, typer.Option(help="Participation needed, share of snapshot supply.")] = "20%",
    approval: Annotated[str, typer.Option(help="Yes share of votes cast needed to accept.")] = "50%",
    voting_period: Annotated[str, typer.Option(help="How long proposals are open (e.g. 1h, 7d).")] = "1h",
    bond: Annotated[str, typer.Option(help="Bond a contributor pays per proposal.")] = "0.01ether",
    base_reward: Annotated[int, typer.Option(help="Shares per accepted item (no evaluator).")] = 10,
    max_reward: Annotated[int, typer.Option(help="Cap on shares per proposal.")] = 10_000,
    evaluation_required: Annotated[bool, typer.Option(help="Proposals need an evaluation to be accepted.")] = False,
    evaluator: Annotated[str, typer.Option(help="Evaluator account name or address.")] = "",
    training_fee: Annotated[str, typer.Option(help="Fee paid to shareholders per training job.")] = "0.1ether",
    accept_delay: Annotated[
        str, typer.Option(help="Time after a proposal opens before a majority can accept it early.")
    ] = "10m",
    max_mint: Annotated[
        str, typer.Option(help="Cap on shares minted per voting period, share of the supply (unless unanimous).")
    ] = "10%",
    min_royalty: Annotated[str, typer.Option(help="Least prediction royalty models trained on it pay.")] = "5%",
    seed: Annotated[Path | None, typer.Option(help="Seed data: a folder with labels CSV, or a table.")] = None,
    validation: Annotated[
        Path | None, typer.Option(help="Validation split for the evaluator: a folder with labels CSV, or a table.")
    ] = None,
    half_life: Annotated[
        int, typer.Option(help="Reward policy: dataset growth (items) that halves a batch's reward.")
    ] = 200,
    labels: Annotated[Path | None, typer.Option(help="Labels CSV of a seed folder.")] = None,
    file_column: Annotated[str, typer.Option(help="File name column of the labels CSV.")] = "file",
    label_column: Annotated[str, typer.Option(help="Label column of the CSV or table.")] = "label",
    source_format: Annotated[str | None, typer.Option("--from", help=FROM_HELP)] = None,
    seed_split: Annotated[str | None, typer.Option(help="Split of a --from seed (default: the format's own).")] = None,
    validation_split: Annotated[str | None, typer.Option(help="Split of a --from validation (e.g. test).")] = None,
) -> None:
    """Create a dataset (you receive its initial shares), optionally seeded with data."""
    if initial_shares <= 0:
        raise InputError("--initial-shares must be positive")
    if base_reward < 0 or max_reward <= 0:
        raise InputError("--base-reward must be >= 0 and --max-reward > 0")
    from databright.chain import DatasetParams
    from databright.operations import DatasetMetadata, create_dataset, evaluation_metadata, load_batch

    label_set = tuple(dict.fromkeys(x.strip() for x in classes.split(",") if x.strip()))
    with workspace() as ws:
        signer = ws.signer()
        params = DatasetParams(
            metadata_digest=b"\0" * 32,
            initial_shares=initial_shares,
            quorum_bps=parse_percent(quorum),
            approval_bps=parse_percent(approval),
            voting_period=parse_duration(voting_period),
            proposal_bond=parse_wei(bond),
            base_reward_per_item=base_reward,
            max_reward_per_proposal=max_reward,
            evaluation_required=evaluation_required,
            training_fee=parse_wei(training_fee),
            evaluator=ws.address_of(evaluator) if evaluator else "0x" + "00" * 20,
            min_accept_delay=_zero_or(parse_duration, accept_delay),
            max_mint_bps=parse_percent(max_mint),
            min_royalty_bps=_zero_or(parse_percent, min_royalty),
        )
        if params.min_accept_delay > params.voting_period:
            raise InputError("--accept-delay must not be longer than --voting-period")
        batch = None
        if seed is not None:
            with item_progress(f"uploading {seed}") as progress:
                batch = load_batch(ws, seed, labels_csv=labels, file_column=file_column, label_column=label_column,
                                   progress=progress, source_format=source_format, split=seed_split)
        kind = kind or (batch.kind if batch is not None else "files")
        if paired and kind != "text":
            raise InputError(f"--paired is for text datasets, not {kind}")
        paired = paired or (batch is not None and batch.paired)
        extra = (("paired", paired),) if kind == "text" else ()
        metadata = DatasetMetadata(name, description, kind, label_set, license_, extra)
        if validation is not None or evaluator:
            held_out = None if validation is None else load_batch(
                ws, validation, file_column=file_column, label_column=label_column, source_format=source_format,
                split=validation_split)
            policy = {"half_life_items": half_life}
            metadata = evaluation_metadata(ws, metadata, held_out, batch, policy)
        dataset_id, seed_proposal = create_dataset(ws, signer, metadata, params, seed=batch)
        row = ws.index.dataset(dataset_id)
        emit(
            {"dataset_id": dataset_id, "seed_proposal": seed_proposal, "items": row.item_count},
            f"Created dataset {dataset_id} ({safe(name)})"
            + (f", seeded with {row.item_count} items (proposal {seed_proposal})" if seed_proposal else ""),
        )


def _zero_or(parse: Callable[[str], int], text: str) -> int:
    """``parse(text)``, where these options also allow none at all ("0", "0s", "0%")."""
    return 0 if text.strip().rstrip("smhd%").strip() == "0" else parse(text)


def _dataset_summary(row: Any, open_count: int) -> dict[str, Any]:
    return {
        "dataset_id": row.dataset_id,
        "name": row.name,
        "kind": row.kind,
        "creator": row.creator,
        "items": row.item_count,
        "entries": row.entry_count,
        "total_shares": row.total_supply,
        "revenue_total_wei": row.revenue_total,
        "open_proposals": open_count,
    }


@app.command("list")
def list_() -> None:
    """List datasets with their size, shares and revenue."""
    with workspace() as ws:
        ws.sync()
        open_by_dataset: dict[int, int] = {}
        for p in ws.index.proposals(status="open"):
            open_by_dataset[p.dataset_id] = open_by_dataset.get(p.dataset_id, 0) + 1
        rows = [_dataset_summary(d, open_by_dataset.get(d.dataset_id, 0)) for d in ws.index.datasets()]
    emit(
        rows,
        table(
            "Datasets",
            ["id", "name", "items", "shares", "revenue", "open proposals"],
            [
                (r["dataset_id"], r["name"], r["items"], r["total_shares"], format_eth(r["revenue_total_wei"]),
                 r["open_proposals"])
                for r in rows
            ],
        ),
    )


@app.command("show")
def show(dataset_id: Annotated[int, typer.Argument(help="Dataset id.")]) -> None:
    """Show a dataset: parameters, accepted entries, shareholders, revenue by source and the models trained on it."""
    from databright.index import dataset_impact, revenue_by_source

    with workspace() as ws:
        ws.sync()
        row = ws.index.dataset(dataset_id)
        sources = revenue_by_source(ws.index, dataset_id)
        models = [vars(i) for i in dataset_impact(ws.index, dataset_id)]
        proposals = ws.index.proposals(dataset_id=dataset_id)
        holders = ws.index.holders(dataset_id)
        entries = sorted((p for p in proposals if p.status == "accepted"), key=lambda p: p.entry_index or 0)
        withdrawable = {h.holder: ws.withdrawable(dataset_id, h.holder) for h in holders}
        previews = []
        if row.kind == "text" and entries:  # the first entry's items: one proposal, not the whole dataset
            previews = text_previews(ws.store, ws.index.items(dataset_id, proposal_id=entries[0].proposal_id))
        data = _dataset_summary(row, sum(p.status == "open" for p in proposals)) | {
            "description": row.description,
            "metadata_cid": row.metadata_cid,
            "metadata": json.loads(row.metadata_json),
            "parameters": {
                "quorum_bps": row.quorum_bps,
                "approval_bps": row.approval_bps,
                "voting_period": row.voting_period,
                "proposal_bond_wei": row.proposal_bond,
                "base_reward_per_item": row.base_reward_per_item,
                "max_reward_per_proposal": row.max_reward_per_proposal,
                "evaluation_required": row.evaluation_required,
                "training_fee_wei": row.training_fee,
                "evaluator": row.evaluator,
            },
            "accepted_items": row.item_count,
            "entries": [
                {"entry_index": p.entry_index, "proposal_id": p.proposal_id, "contributor": p.contributor,
                 "items": p.item_count, "shares_minted": p.shares_minted, "manifest_cid": p.manifest_cid,
                 "root": p.root}
                for p in entries
            ],
            "shareholders": [
                {"address": h.holder, "shares": h.balance,
                 "fraction": h.balance / row.total_supply if row.total_supply else 0.0,
                 "withdrawn_wei": h.withdrawn, "withdrawable_wei": withdrawable[h.holder]}
                for h in holders
            ],
            "revenue_by_source_wei": sources,
            "models": models,
            **({"text_preview": previews} if previews else {}),
        }
    emit(
        data,
        f"[bold]Dataset {row.dataset_id}: {safe(row.name)}[/bold]  {safe(row.description)}",
        f"{row.item_count} accepted items in {row.entry_count} entries; {row.total_supply} shares; "
        f"revenue {format_eth(row.revenue_total)} paid in; metadata {safe(row.metadata_cid)}",
        table(
            "Entries",
            ["entry", "proposal", "contributor", "items", "shares", "manifest"],
            [(e["entry_index"], e["proposal_id"], e["contributor"], e["items"], e["shares_minted"], e["manifest_cid"])
             for e in data["entries"]],
        ),
        table(
            "Shareholders",
            ["address", "shares", "fraction", "withdrawn", "withdrawable"],
            [(s["address"], s["shares"], f"{s['fraction']:.1%}", format_eth(s["withdrawn_wei"]),
              format_eth(s["withdrawable_wei"])) for s in data["shareholders"]],
        ),
        "Revenue by source: " + ", ".join(f"{k.replace('_', ' ')} {format_eth(v)}" for k, v in sources.items()),
        table(
            "Models trained on it",
            ["model", "owner", "verified", "improvement", "training fee", "royalties", "predictions"],
            [(m["model_id"], m["owner"], _points(m["verified_score_ppm"]), _points(m["improvement_ppm"], sign=True),
              format_eth(m["training_fee_wei"]), format_eth(m["royalties_wei"]), f"{m['predictions']:,}")
             for m in models],
        ),
        *([table(f"First {len(previews)} of {row.item_count} items", ["#", "label", "text"],
                 [(r["position"], r["label"], r["text"]) for r in previews])] if previews else []),
    )


def _points(ppm: int | None, *, sign: bool = False) -> str:
    """ppm of accuracy as a percentage (improvements as signed points)."""
    if ppm is None:
        return "-"
    return f"{ppm / 10_000:+.2f} points" if sign else f"{ppm / 10_000:.2f}%"


@app.command("items")
def items(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")],
    limit: Annotated[int, typer.Option(help=LIMIT_HELP, callback=check_page_limit)] = 50,
    cursor: Annotated[str | None, typer.Option(help=CURSOR_HELP)] = None,
    pending: Annotated[bool, typer.Option(help="Show items of open proposals instead.")] = False,
) -> None:
    """List a dataset's accepted items (CID, label, proposal), a page at a time."""
    from databright.cli.proposal import _item_data

    with workspace() as ws:
        ws.sync()
        row = ws.index.dataset(dataset_id)
        with cursor_usage():
            page = ws.index.items_page(dataset_id, accepted=not pending, cursor=cursor, limit=limit)
    data = [_item_data(r) for r in page.rows]
    total = None if pending else row.item_count
    emit(
        {"items": data, "total": total, "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor},
        table(
            f"Items of dataset {dataset_id}" + (f" ({len(data)} of {total})" if total is not None else ""),
            ["cid", "label", "proposal", "duplicate of"],
            [(d["cid"], d["label"], d["proposal_id"], d["duplicate_of"]) for d in data],
        ),
        *([f"more: --cursor {page.next_cursor}"] if page.next_cursor else []),
    )


@app.command("export")
def export(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")],
    out: Annotated[Path, typer.Argument(help="Output folder (created).")],
    fmt: Annotated[str, typer.Option("--format", help="parquet, or for text datasets opennmt or jsonl.")] = "parquet",
) -> None:
    """Write the accepted items as Parquet for pandas or Hugging Face, streamed a row group at a time
    (text datasets: also OpenNMT files or JSONL)."""
    from databright.export import export_dataset

    with workspace() as ws:
        ws.sync()
        with item_progress(f"exporting dataset {dataset_id}") as progress:
            result = export_dataset(ws, dataset_id, out, fmt, progress=progress)
    written = result["parquet"] if "parquet" in result else ", ".join(result["files"])
    emit(result, f"Exported {result['items']} items to {safe(written)}")
    if not result["items"]:
        console.print("the dataset has no accepted items yet")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dataset")


