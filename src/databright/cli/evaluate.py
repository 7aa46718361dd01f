"""``databright evaluate`` and ``databright evaluator run``: value proposals before the vote."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from databright.cli._common import console, emit, err_console, state, table, workspace
from databright.errors import InputError

__all__ = ["register", "signal_rows"]

app = typer.Typer(help="Run the evaluator service of your account.", no_args_is_help=True)


def signal_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The evaluation of a report as (signal, value) rows for people."""
    results = report["results"]
    s = results["signals"]
    gain = results["gain"]
    if "manifest_mismatch" in results:
        return [("manifest", "does NOT match the root / item count committed on-chain: not valued"),
                ("shares by policy", "0")]
    if "text_signals" in results:  # parallel text: valued by its duplicates until a translation spec exists
        t = results["text_signals"]
        return [("valued by", "duplicate signals (no translation model spec yet)"),
                ("shares by policy", str(results["shares"])),
                ("novel pairs", str(t["novel_items"])),
                ("exact duplicates of accepted", str(len(s["exact_duplicates"]))),
                ("near duplicates of accepted", f"{len(s['near_duplicates'])} (Jaccard ≥ {t['near_jaccard']})"),
                ("repeated within the batch", f"{len(t['within_exact_duplicates'])} exact, "
                                              f"{len(t['within_near_duplicates'])} near")]
    return [
        ("accuracy gain", f"{gain['mean'] * 100:+.2f} points (± {gain['std'] * 100:.2f} over "
                          f"{len(results['scores'])} seeds)"),
        ("shares by policy", str(results["shares"])),
        ("KNN-Shapley sum / mean", f"{s['knn_sum']:+.4f} / {s['knn_mean']:+.6f}"),
        ("items with negative value", f"{s['knn_negative']} of {len(s['knn_values'])}"),
        ("exact duplicates", str(len(s["exact_duplicates"]))),
        ("near duplicates", str(len(s["near_duplicates"]))),
        ("suspected mislabels", str(len(s["suspected_mislabels"]))),
    ]


def evaluate(
    proposal_id: Annotated[int | None, typer.Argument(help="Proposal to evaluate.")] = None,
    verify: Annotated[str | None, typer.Option(help="Re-run the report with this CID and compare bitwise.")] = None,
    post: Annotated[bool, typer.Option(help="Post the evaluation on-chain (as the dataset's evaluator).")] = True,
) -> None:
    """Evaluate one proposal (leave-one-out gain, KNN-Shapley, duplicates, mislabels) or verify a report."""
    from databright.evaluator import Evaluator, verify_report

    if (proposal_id is None) == (verify is None):
        raise InputError("give a proposal id or --verify REPORT_CID")
    with workspace() as ws:
        if verify is not None:
            result = verify_report(ws.store, verify)
            emit(
                {"report_cid": verify, "identical": result.identical, "differences": list(result.differences),
                 "environment_differences": list(result.environment)},
                f"report {verify}: " + ("reproduced bitwise" if result.identical
                                        else f"NOT reproduced: {', '.join(result.differences)}"),
                *(f"environment differs: {note}" for note in result.environment),
            )
            if not result.identical:
                raise typer.Exit(1)
            return
        assert proposal_id is not None
        evaluator = Evaluator(ws, ws.signer())
        evaluation = evaluator.evaluate(proposal_id, post=post)
    emit(
        {"proposal_id": proposal_id, "report_cid": evaluation.report_cid, "posted": evaluation.posted,
         **evaluation.report["results"]},
        table(f"Evaluation of proposal {proposal_id}", ["signal", "value"], signal_rows(evaluation.report)),
        f"report {evaluation.report_cid}" + (" posted on-chain" if evaluation.posted else " (not posted)"),
    )


@app.command("run")
def run(
    interval: Annotated[float, typer.Option(help="Seconds between looks at the chain.")] = 2.0,
    once: Annotated[bool, typer.Option(help="Evaluate what is pending, then exit.")] = False,
) -> None:
    """Evaluate every new proposal of the datasets you are the evaluator of, until interrupted."""
    from databright.evaluator import Evaluator

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with workspace() as ws:
            evaluator = Evaluator(ws, ws.signer())
            out = err_console if state.json else console
            out.print(f"evaluator {evaluator.signer.address} following chain {ws.ledger.chain_id}")
            count = evaluator.run(interval=interval, stop=stop, once=once, report=out.print)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    emit({"evaluated": count}, f"{count} proposal(s) evaluated")


def register(root: typer.Typer) -> None:
    root.command()(evaluate)
    root.add_typer(app, name="evaluator")
