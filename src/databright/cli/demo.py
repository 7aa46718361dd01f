"""``databright demo``: the whole data market on the embedded chain, in one command."""

from __future__ import annotations

import typer

from typing import TYPE_CHECKING

from databright.cli._common import console, emit, format_eth, state, table

if TYPE_CHECKING:
    from databright.demo_compute import ComputeRound
    from databright.demo_market import ModelSale

__all__ = ["register"]


def demo() -> None:
    """Grow a digits dataset with eight contributors, vote, finalize; train, register and sell a model's
    predictions through a payment channel; every holder withdraws the revenue.

    Runs on the embedded chain of --home (created if missing) and keeps its state there.
    """
    from databright.demo import __doc__ as policy
    from databright.demo import run_demo

    target = state.home_dir
    quiet = state.json
    with console.status("running the demo…", spinner="dots") if not quiet else _null():
        result = run_demo(target, progress=(lambda _msg: None) if quiet else (lambda msg: console.print(f"• {msg}")))
    policy_text = " ".join((policy or "").split("Voting policy of the demo's shareholders:")[-1].split())
    emit(
        {
            "home": str(result.home),
            "dataset_id": result.dataset_id,
            "proposals": [p.__dict__ for p in result.proposals],
            "holders": result.holders,
            "revenue_total_wei": result.revenue_wei,
            "report": str(result.report),
            "evaluation_latency_s": result.latency,
            "model_sale": result.sale.__dict__ if result.sale else None,
            "compute_round": result.compute.__dict__ if result.compute else None,
        },
        f"\n[bold]Voting policy:[/bold] {policy_text}\n",
        table(
            "Proposals, their evaluations and outcomes",
            ["id", "by", "batch", "gain (points)", "knn sum", "flags", "yes", "no", "outcome", "shares"],
            [(p.proposal_id, p.contributor, f"{p.items} {_KIND[p.kind]}", f"{p.gain * 100:+.2f}",
              f"{p.knn_sum:+.3f}", _flags(p), sum(w for _, s, w, _ in p.votes if s),
              sum(w for _, s, w, _ in p.votes if not s), p.outcome, p.shares) for p in result.proposals],
        ),
        table(
            "Votes",
            ["proposal", "voter", "vote", "weight", "reason"],
            [(p.proposal_id, v, "yes" if s else "no", w, r) for p in result.proposals for v, s, w, r in p.votes],
        ),
        *_sale(result.sale),
        *_compute(result.compute),
        table(
            "Shareholders and revenue",
            ["holder", "address", "shares", "fraction", "withdrawn"],
            [(h["name"], h["address"], h["shares"], f"{h['fraction']:.1%}", format_eth(h["withdrawn_wei"]))
             for h in result.holders],
        ),
        f"Revenue paid to dataset {result.dataset_id}: {format_eth(result.revenue_wei)} "
        "(training fee, prediction royalties and forfeited bonds)",
        f"Median evaluation latency per proposal: {result.latency:.2f} s",
        f"Report with plots: {result.report}",
        f"State kept in {result.home}: try  databright --home {result.home} dataset show {result.dataset_id}",
    )


def _compute(job: ComputeRound | None) -> list[object]:
    if job is None:
        return []
    cheats = ", ".join(f"{s['worker']} ({format_eth(s['lost_wei'])})" for s in job.slashed) or "none"
    return [f"Compute job {job.job_id} (redundancy 3, {job.workers} logical workers): {job.paid_tasks} tasks paid "
            f"{format_eth(job.paid_wei)}, {format_eth(job.refunded_wei)} refunded, slashed: {cheats}; training fee "
            f"{format_eth(job.training_fee_wei)} to the shareholders; model {job.model_id} registered from the job "
            f"with {format_eth(job.registration_fee_wei)} more (accuracy {job.score:.2%}, verified by the "
            f"coordinator), {job.seconds:.1f} s"]


def _sale(sale: ModelSale | None) -> list[object]:
    if sale is None:
        return []
    return [
        f"Model {sale.model_id}: claimed accuracy {sale.claimed_score:.2%}, verified {sale.verified_score:.2%}; "
        f"{sale.predictions} predictions bought through channel {sale.channel_id} ({sale.correct} correct), "
        f"{format_eth(sale.paid_wei)} redeemed, royalty {format_eth(sale.royalty_wei)} to the shareholders",
        table(
            "Royalty reaching the shareholders (withdrawable before and after the redemption)",
            ["holder", "address", "before", "after", "royalty"],
            [(h["name"], h["address"], format_eth(h["before_wei"]), format_eth(h["after_wei"]),
              format_eth(h["royalty_wei"])) for h in sale.holders],
        ),
    ]


_KIND = {"clean": "clean", "flipped labels": "flipped", "repeats accepted items": "repeats"}


def _flags(p: object) -> str:
    flags = []
    if getattr(p, "duplicates", 0):
        flags.append(f"{p.duplicates} dup")  # type: ignore[attr-defined]
    if getattr(p, "mislabels", 0):
        flags.append(f"{p.mislabels} mislab")  # type: ignore[attr-defined]
    return ", ".join(flags)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def register(root: typer.Typer) -> None:
    root.command()(demo)
