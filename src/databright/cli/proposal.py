"""``databright propose``, ``proposal list|show``, ``vote`` and ``finalize``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from databright.cli._common import (
    CURSOR_HELP,
    LIMIT_HELP,
    check_page_limit,
    console,
    cursor_usage,
    emit,
    format_eth,
    safe,
    table,
    workspace,
)
from databright.cli._progress import FROM_HELP, item_progress
from databright.cli._text import text_previews
from databright.cli.evaluate import signal_rows
from databright.errors import DataBrightError, InputError

if TYPE_CHECKING:
    from databright.index import ProposalRow

__all__ = ["register"]

app = typer.Typer(help="Browse proposals.", no_args_is_help=True)


def propose(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")],
    source: Annotated[Path, typer.Argument(help="A folder of files (with a labels CSV) or a CSV/Parquet table.")],
    labels: Annotated[
        Path | None, typer.Option(help="Labels CSV (default: SOURCE/labels.csv); for text, a line-aligned labels file.")
    ] = None,
    file_column: Annotated[str, typer.Option(help="File name column of the labels CSV.")] = "file",
    label_column: Annotated[str, typer.Option(help="Label column of the CSV or table.")] = "label",
    allow_duplicates: Annotated[bool, typer.Option(help="Propose items already in the dataset (flagged).")] = False,
    source_format: Annotated[str | None, typer.Option("--from", help=FROM_HELP)] = None,
    split: Annotated[str | None, typer.Option(help="Split of a --from dataset (e.g. train, test).")] = None,
) -> None:
    """Upload a batch, commit its Merkle root and manifest on-chain, and pay the bond."""
    from databright.operations import load_batch, propose_batch

    with workspace() as ws:
        signer = ws.signer()
        ws.sync()
        dataset = ws.index.dataset(dataset_id)
        with item_progress(f"uploading {safe(source)}") as progress:
            batch = load_batch(ws, source, labels_csv=labels, file_column=file_column, label_column=label_column,
                               progress=progress, source_format=source_format, split=split)
        with console.status(f"proposing {batch.size} items…"):
            proposal_id, duplicates = propose_batch(
                ws, signer, dataset_id, batch, allow_duplicates=allow_duplicates
            )
        row = ws.index.proposal(proposal_id)
    emit(
        {"proposal_id": proposal_id, "dataset_id": dataset_id, "items": batch.size, "duplicates": duplicates,
         "manifest_cid": batch.manifest_cid, "root": "0x" + batch.manifest.root.hex(), "bond_wei": row.bond,
         "deadline": row.deadline},
        f"Proposal {proposal_id}: {batch.size} items to dataset {dataset_id} ({safe(dataset.name)}), "
        f"bond {format_eth(row.bond)}, manifest {batch.manifest_cid}"
        + (f" — {duplicates} duplicate item(s) flagged" if duplicates else ""),
    )


def _time_left(deadline: int, now: float) -> str:
    left = int(deadline - now)
    if left <= 0:
        return "closed"
    hours, rest = divmod(left, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _proposal_data(p: ProposalRow, now: float) -> dict[str, Any]:
    return {
        "proposal_id": p.proposal_id,
        "dataset_id": p.dataset_id,
        "contributor": p.contributor,
        "items": p.item_count,
        "status": p.status,
        "yes": p.yes_votes,
        "no": p.no_votes,
        "voters": p.voter_count,
        "bond_wei": p.bond,
        "deadline": p.deadline,
        "time_left": _time_left(p.deadline, now) if p.status == "open" else "",
        "shares_minted": p.shares_minted,
        "duplicates": p.duplicate_count,
        "evaluated": p.evaluated,
        "value": p.value,
        "manifest_cid": p.manifest_cid,
    }


@app.command("list")
def list_(
    dataset: Annotated[int | None, typer.Option(help="Only this dataset.")] = None,
    status: Annotated[str | None, typer.Option(help="open, accepted or rejected.")] = None,
    limit: Annotated[int, typer.Option(help=LIMIT_HELP, callback=check_page_limit)] = 100,
    cursor: Annotated[str | None, typer.Option(help=CURSOR_HELP)] = None,
) -> None:
    """List proposals with their tallies and outcomes, a page at a time (oldest first)."""
    from databright.operations import chain_time

    if status is not None and status not in {"open", "accepted", "rejected"}:
        raise InputError(f"unknown status {status!r}: use open, accepted or rejected")
    with workspace() as ws:
        ws.sync()
        if dataset is not None:
            ws.index.dataset(dataset)
        now = float(chain_time(ws))
        with cursor_usage():
            page = ws.index.proposals_page(dataset, status, cursor=cursor, limit=limit)
        total = ws.index.proposal_count(dataset, status)
        rows = [_proposal_data(p, now) for p in page.rows]
    emit(
        {"proposals": rows, "total": total, "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor},
        table(
            f"Proposals ({len(rows)} of {total})",
            ["id", "dataset", "contributor", "items", "yes", "no", "status", "shares", "dups"],
            [(r["proposal_id"], r["dataset_id"], r["contributor"][:10] + "…", r["items"], r["yes"], r["no"],
              r["status"] + (f" ({r['time_left']})" if r["time_left"] else ""), r["shares_minted"], r["duplicates"])
             for r in rows],
        ),
        *([f"more: --cursor {page.next_cursor}"] if page.next_cursor else []),
    )


def _item_data(i: Any) -> dict[str, Any]:
    return {"cid": i.cid, "label": i.label, "proposal_id": i.proposal_id, "position": i.position,
            "metadata": json.loads(i.metadata_json), "duplicate_of": i.duplicate_of}


@app.command("show")
def show(
    proposal_id: Annotated[int, typer.Argument(help="Proposal id.")],
    limit: Annotated[int, typer.Option(help="Items to list " + LIMIT_HELP[4:], callback=check_page_limit)] = 20,
    cursor: Annotated[str | None, typer.Option(help=CURSOR_HELP)] = None,
) -> None:
    """Show a proposal: tally against quorum and approval, votes, flags, and a page of its items."""
    from databright.operations import chain_time

    with workspace() as ws:
        ws.sync()
        p = ws.index.proposal(proposal_id)
        d = ws.index.dataset(p.dataset_id)
        votes = ws.index.votes(proposal_id)
        with cursor_usage():
            page = ws.index.items_page(p.dataset_id, accepted=None, proposal_id=proposal_id, cursor=cursor,
                                       limit=limit)
        # Over every item, counted by the database: never the whole manifest in memory.
        labels = ws.index.proposal_labels(proposal_id)
        duplicates = [{"cid": cid, "position": position, "duplicate_of": of}
                      for cid, position, of in ws.index.duplicate_items(proposal_id)]
        supply = ws.market.snapshot_supply(proposal_id)
        now = float(chain_time(ws))
        report = _report(ws, p.report_cid)
        previews = text_previews(ws.store, page.rows) if d.kind == "text" else []
    cast = p.yes_votes + p.no_votes
    data = _proposal_data(p, now) | {
        "root": p.root,
        "snapshot_block": p.snapshot_block,
        "snapshot_supply": supply,
        "quorum_needed": -(-supply * d.quorum_bps // 10_000),
        "participation": cast / supply if supply else 0.0,
        "approval": p.yes_votes / cast if cast else 0.0,
        "approval_needed": d.approval_bps / 10_000,
        "report_cid": p.report_cid,
        "eval_shares": p.eval_shares,
        "votes": [{"voter": v.voter, "support": v.support, "weight": v.weight} for v in votes],
        "duplicate_items": duplicates,
        "labels": labels,
        "item_page": [_item_data(i) for i in page.rows],
        "next_cursor": page.next_cursor,
        "prev_cursor": page.prev_cursor,
        "manifest_matches": p.manifest_matches,
        "evaluation": None if report is None else {"report_cid": p.report_cid, **report["results"]},
        **({"text_preview": previews} if previews else {}),
    }
    emit(
        data,
        f"[bold]Proposal {p.proposal_id}[/bold] to dataset {d.dataset_id} ({safe(d.name)}) by {p.contributor}: "
        f"{p.item_count} items, status {p.status}"
        + (f", {data['time_left']} left" if data["time_left"] else ""),
        f"tally: yes {p.yes_votes} / no {p.no_votes} of {supply} snapshot shares — participation "
        f"{data['participation']:.0%} (quorum {d.quorum_bps / 100:g}%), approval {data['approval']:.0%} "
        f"(needs {d.approval_bps / 100:g}%)",
        *(["[bold red]the manifest does not match the root or item count committed on-chain[/bold red]"]
          if p.manifest_matches is False else []),
        f"manifest {safe(p.manifest_cid)}; labels {safe(json.dumps(data['labels'], ensure_ascii=False))}"
        + (f"; [yellow]{p.duplicate_count} duplicate item(s) of accepted data[/yellow]" if p.duplicate_count else ""),
        *([table(f"Texts of {len(previews)} of {p.item_count} items", ["#", "label", "text"],
                 [(r["position"], r["label"], r["text"]) for r in previews])] if previews else []),
        table("Votes", ["voter", "vote", "weight"], [(v.voter, "yes" if v.support else "no", v.weight) for v in votes]),
        table(f"Items {page.rows[0].position + 1 if page.rows else 0}-{page.rows[-1].position + 1 if page.rows else 0}"
              f" of {p.item_count}", ["position", "cid", "label", "duplicate of"],
              [(i.position, i.cid, i.label, i.duplicate_of) for i in page.rows]),
        *([f"more items: --cursor {page.next_cursor}"] if page.next_cursor else []),
        *(
            [table(f"Evaluation (report {p.report_cid})", ["signal", "value"], signal_rows(report))]
            if report is not None
            else ["not evaluated yet" if not p.evaluated else f"evaluation report {p.report_cid} not readable here"]
        ),
    )


def _report(ws: Any, report_cid: str | None) -> dict[str, Any] | None:
    if not report_cid:
        return None
    from databright.evaluator import load_report

    try:
        return load_report(ws.store, report_cid)
    except DataBrightError:
        return None  # a seed's note, or a report kept in another store


def vote(
    proposal_id: Annotated[int, typer.Argument(help="Proposal id.")],
    choice: Annotated[str, typer.Argument(help="yes or no.")],
) -> None:
    """Vote on a proposal with your shares at its snapshot block."""
    if choice.lower() not in {"yes", "no", "y", "n"}:
        raise InputError(f"vote must be yes or no, not {choice!r}")
    support = choice.lower().startswith("y")
    from databright.operations import check_vote

    with workspace() as ws:
        signer = ws.signer()
        weight = check_vote(ws, proposal_id, signer.address, support=support)
        ws.market.vote(signer, proposal_id, support)
        # the tally from the chain: a vote never waits for the index (the next read syncs it)
        p = ws.market.proposal(proposal_id)
    emit(
        {"proposal_id": proposal_id, "voter": signer.address, "support": support, "weight": weight,
         "yes": p.yes_votes, "no": p.no_votes},
        f"{signer.address} voted {'yes' if support else 'no'} with {weight} shares on proposal {proposal_id} "
        f"(yes {p.yes_votes} / no {p.no_votes})",
    )


def finalize(proposal_id: Annotated[int, typer.Argument(help="Proposal id.")]) -> None:
    """Decide a proposal: mint shares and record the entry, or forfeit the bond."""
    from databright.operations import check_finalize

    with workspace() as ws:
        signer = ws.signer()
        check_finalize(ws, proposal_id)
        ws.market.finalize(signer, proposal_id)
        ws.sync()
        p = ws.index.proposal(proposal_id)
    emit(
        {"proposal_id": proposal_id, "status": p.status, "expired": p.expired, "shares_minted": p.shares_minted,
         "entry_index": p.entry_index, "yes": p.yes_votes, "no": p.no_votes},
        f"Proposal {proposal_id} {p.status}"
        + (f": {p.shares_minted} shares minted to {p.contributor}, entry {p.entry_index}" if p.status == "accepted"
           else f": expired unevaluated, bond {format_eth(p.bond)} refunded" if p.expired
           else f": bond {format_eth(p.bond)} paid to the shareholders")
        + (f"; {p.contributor} claims the bond with `databright refund`" if p.status == "accepted" or p.expired
           else ""),
    )


def refund() -> None:
    """Claim the bonds refunded to you (accepted and expired proposals)."""
    with workspace() as ws:
        signer = ws.signer()
        due = ws.market.refundable(signer.address)
        if due == 0:
            raise InputError(f"no bond refund is waiting for {signer.address}")
        amount = ws.market.withdraw_refund(signer)
    emit({"account": signer.address, "amount_wei": amount},
         f"{format_eth(amount)} of refunded bonds sent to {signer.address}")


def register(root: typer.Typer) -> None:
    root.command()(propose)
    root.add_typer(app, name="proposal")
    root.command()(vote)
    root.command()(finalize)
    root.command()(refund)
