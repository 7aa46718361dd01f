"""``databright model deploy|register|list|show|price|serve``: the model registry and its server."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from databright.cli._common import (
    deploy_market,
    emit,
    format_eth,
    parse_duration,
    parse_percent,
    parse_wei,
    require_funds,
    state,
    table,
    workspace,
)
from databright.errors import InputError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from databright.workspace import Workspace
    from databright.config import Home

__all__ = ["announce_file", "parse_royalty", "register", "register_trained"]

app = typer.Typer(help="Register models trained on datasets, sell and serve their predictions.",
                  no_args_is_help=True)


def parse_royalty(text: str) -> int:
    """'10%' -> 1000 basis points; '0' and '0%' are allowed."""
    if text.strip().rstrip("%").strip() in {"0", "0.0"}:
        return 0
    return parse_percent(text)


def announce_file(home: Home, chain_id: int, model_id: int) -> Path:
    """Where a running ``model serve`` writes its URL, for ``predict`` and the dashboard to find."""
    from databright.models import announce_path

    return announce_path(home.root, chain_id, model_id)


def _ppm(score: int) -> str:
    return f"{score / 10_000:.2f}%"


def register_trained(ws: Workspace, dataset_id: int, report_cid: str, price: int, royalty_bps: int) -> dict[str, Any]:
    """Register the model a training report describes; returns what the command prints."""
    from databright.models import load_training_report

    report = load_training_report(ws.store, report_cid)
    if int(report["dataset_id"]) != dataset_id:
        raise InputError(f"report {report_cid} trained on dataset {report['dataset_id']}, not {dataset_id}")
    return register_model(ws, dataset_id, report["spec"], report["checkpoint"], report_cid, float(report["score"]),
                          price, royalty_bps)


def register_model(ws: Workspace, dataset_id: int, spec_cid: str, checkpoint_cid: str, report_cid: str,
                   score: float, price: int, royalty_bps: int, job_id: int | None = None,
                   signer: LocalAccount | None = None) -> dict[str, Any]:
    """Register a model by its spec, checkpoint and training receipt (a report CID), paying the training fee.

    A model trained by ComputeMarket job ``job_id`` pays no fee: the job's
    submission paid it, and ModelMarket checks the job on-chain. Only a
    ModelMarket deployed before it could read jobs (not linked to this
    deployment's ComputeMarket) charges the fee again. ``signer`` defaults
    to the home's account.
    """
    from databright.storage import digest_of_cid

    signer = signer or ws.signer()
    mm = ws.model_market
    digests = (digest_of_cid(spec_cid), digest_of_cid(checkpoint_cid), digest_of_cid(report_cid))
    score_ppm = round(score * 1_000_000)
    from_job: int | None = None
    if job_id is not None and mm.compute_market_address() == ws.compute_market.address:
        from_job, fee = job_id, 0
        model_id = mm.register_from_job(signer, job_id, dataset_id, *digests, score_ppm, price, royalty_bps)
    else:
        fee = mm.training_fee(dataset_id)
        require_funds(ws, signer.address, fee, "the dataset's training fee")
        model_id = mm.register(signer, dataset_id, *digests, score_ppm, price, royalty_bps)
    return {"model_id": model_id, "dataset_id": dataset_id, "owner": signer.address, "price_wei": price,
            "royalty_bps": royalty_bps, "claimed_score_ppm": score_ppm, "training_fee_wei": fee,
            "registered_from_job": from_job,
            "report": report_cid, "checkpoint": checkpoint_cid, "spec": spec_cid}


@app.command("deploy")
def deploy_cmd() -> None:
    """Deploy ModelMarket next to this chain's DataMarket (for a deployment made before it existed)."""
    from databright.chain import add_model_market

    deploy_market("ModelMarket", add_model_market)


@app.command("register")
def register_cmd(
    dataset_id: Annotated[int, typer.Argument(help="Dataset the model was trained on.")],
    report: Annotated[str, typer.Option(help="CID of the training report ('databright train' prints it).")],
    price: Annotated[str, typer.Option(help="Price per prediction, e.g. 10gwei.")],
    royalty: Annotated[str, typer.Option(help="Share of every payment paid to the dataset, e.g. 10%.")],
) -> None:
    """Register a trained model, paying the dataset's training fee."""
    wei, bps = parse_wei(price), parse_royalty(royalty)
    with workspace() as ws:
        out = register_trained(ws, dataset_id, report, wei, bps)
    emit(out, f"Registered model {out['model_id']} on dataset {dataset_id}: {format_eth(wei)} per prediction, "
              f"{bps / 100:g}% royalty, training fee {format_eth(out['training_fee_wei'])} paid")


def _score(ppm: int | None) -> str:
    return _ppm(ppm) if ppm is not None else "-"


@app.command("list")
def list_cmd(
    dataset: Annotated[int | None, typer.Option(help="Only the models trained on this dataset.")] = None,
) -> None:
    """Registered models, best verified score first: price, royalty, predictions, royalties paid."""
    from databright.index import best_verified, list_models, model_versions

    rows: list[dict[str, Any]] = []
    with workspace() as ws:
        ws.contract_address("ModelMarket", "databright model deploy")  # a clear error when it is not deployed
        ws.sync()
        for m in list_models(ws.index, dataset_id=dataset):
            versions = model_versions(ws.index, m.model_id)
            rows.append({"model_id": m.model_id, "dataset_id": m.dataset_id, "owner": m.owner, "price_wei": m.price,
                         "royalty_bps": m.royalty_bps, "versions": m.version_count,
                         "claimed_score_ppm": versions[-1].claimed_score if versions else 0,
                         "verified_score_ppm": best_verified(versions), "predictions": m.predictions,
                         "revenue_wei": m.revenue, "royalties_wei": m.royalties})
    rows.sort(key=lambda r: (r["verified_score_ppm"] is None, -(r["verified_score_ppm"] or 0), r["model_id"]))
    emit({"models": rows}, table(
        "Models", ["id", "dataset", "owner", "price", "royalty", "versions", "claimed", "verified", "predictions",
                   "royalties paid"],
        [(r["model_id"], r["dataset_id"], r["owner"], format_eth(r["price_wei"]), f"{r['royalty_bps'] / 100:g}%",
          r["versions"], _ppm(r["claimed_score_ppm"]), _score(r["verified_score_ppm"]), f"{r['predictions']:,}",
          format_eth(r["royalties_wei"])) for r in rows]))


@app.command("show")
def show(model_id: Annotated[int, typer.Argument(help="Model id.")]) -> None:
    """A model: version history with verified scores, predictions served, revenue and royalties paid."""
    from databright.index import get_model, model_income, model_versions, redemptions

    with workspace() as ws:
        ws.model_market  # noqa: B018 - a clear error when ModelMarket is not deployed
        ws.sync()
        m = get_model(ws.index, model_id)
        versions: list[dict[str, Any]] = [{"version": v.version, "spec": v.spec_cid, "checkpoint": v.checkpoint_cid,
                     "report": v.report_cid, "claimed_score_ppm": v.claimed_score,
                     "verified_score_ppm": v.verified_score, "verification_report": v.verification_cid,
                     "block": v.block} for v in model_versions(ws.index, model_id)]
        paid = [{"channel_id": r.channel_id, "paid_wei": r.paid, "royalty_wei": r.royalty,
                 "predictions": r.predictions, "block": r.block} for r in redemptions(ws.index, model_id)]
        holders: list[dict[str, Any]] = [{"holder": r.holder, "training_fee_wei": r.training_fee, "royalties_wei": r.royalties}
                   for r in model_income(ws.index, model_id)]
    data = {"model_id": model_id, "dataset_id": m.dataset_id, "owner": m.owner, "price_wei": m.price,
            "royalty_bps": m.royalty_bps, "training_fee_wei": m.training_fee, "predictions": m.predictions,
            "revenue_wei": m.revenue, "royalties_wei": m.royalties, "versions": versions, "redemptions": paid,
            "paid_to_holders": holders}
    emit(data, f"Model {model_id} on dataset {m.dataset_id}, owner {m.owner}: {format_eth(m.price)} per prediction, "
               f"{m.royalty_bps / 100:g}% royalty",
         f"{m.predictions:,} predictions served, {format_eth(m.revenue)} redeemed, "
         f"{format_eth(m.training_fee + m.royalties)} paid to the dataset "
         f"({format_eth(m.training_fee)} training fee, {format_eth(m.royalties)} royalties)",
         table("Versions", ["version", "checkpoint", "claimed", "verified", "block"],
               [(v["version"], v["checkpoint"], _ppm(v["claimed_score_ppm"]), _score(v["verified_score_ppm"]),
                 v["block"]) for v in versions]),
         table("Paid to the dataset's shareholders", ["holder", "training fee", "royalties"],
               [(h["holder"], format_eth(h["training_fee_wei"]), format_eth(h["royalties_wei"])) for h in holders]))


@app.command("price")
def price_cmd(
    model_id: Annotated[int, typer.Argument(help="Model id.")],
    price: Annotated[str, typer.Argument(help="New price per prediction, e.g. 20gwei.")],
) -> None:
    """Change a model's price; vouchers already signed keep paying what they say."""
    wei = parse_wei(price)
    with workspace() as ws:
        signer, mm = ws.signer(), ws.model_market
        if mm.model(model_id).owner != signer.address:
            raise InputError(f"model {model_id} is not owned by {signer.address}")
        mm.set_price(signer, model_id, wei)
    emit({"model_id": model_id, "price_wei": wei}, f"Model {model_id} now costs {format_eth(wei)} per prediction")


@app.command("verify")
def verify_cmd(
    model_id: Annotated[int, typer.Argument(help="Model id.")],
    version: Annotated[int | None, typer.Option(help="Version (default: the latest).")] = None,
) -> None:
    """As the dataset's evaluator: score a model version on the validation split, re-run its
    training report, and post the verified score with the verification report."""
    from databright.models import ServedModel, verify_model

    with workspace() as ws:
        signer, mm = ws.signer(), ws.model_market
        served = ServedModel.load(mm, ws.store, model_id, version)
        evaluator = ws.market.dataset(served.dataset_id).evaluator
        if evaluator != signer.address:
            raise InputError(f"{signer.address} is not the evaluator of dataset {served.dataset_id} ({evaluator})")
        ws.sync()
        meta = json.loads(ws.index.dataset(served.dataset_id).metadata_json or "{}")
        if "validation" not in meta:
            raise InputError(f"dataset {served.dataset_id} publishes no validation split")
        result = verify_model(mm, ws.store, signer, model_id, served.version, str(meta["validation"]))
    emit({"model_id": model_id, "model_version": result.version, "score": result.score,
          "score_ppm": result.score_ppm, "training_reproduced": result.reproduced, "problems": list(result.problems),
          "report": result.report_cid},
         f"Model {model_id} version {result.version}: accuracy {result.score:.2%} on the validation split; "
         + ("training reproduced bitwise; posted" if not result.problems
            else f"posted as 0 because {result.reason}") + f"; report {result.report_cid}")


@app.command("serve")
def serve_cmd(
    model_id: Annotated[int, typer.Argument(help="Model id to serve.")],
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0 picks a free one).")] = 8100,
    threshold: Annotated[str, typer.Option(help="Redeem a channel once this much is unredeemed.")] = "0.01ether",
    deadline: Annotated[str, typer.Option(help="Redeem any payment at the latest this long after it.")] = "1h",
    fsync: Annotated[bool, typer.Option(help="Flush each voucher to disk before answering (--no-fsync: "
                                             "survives the server's death, not the machine's).")] = True,
    workers: Annotated[int | None, typer.Option(help="Have N logical compute-market workers on this machine "
                                                     "answer the predictions (a serving job, settled on exit).")] = None,
    coordinator: Annotated[str | None, typer.Option(help="Have the workers of this coordinator (URL) answer, "
                                                         "for --serving-job.")] = None,
    serving_job: Annotated[int | None, typer.Option(help="The serving job the workers answer for "
                                                         "('databright compute serving submit').")] = None,
    operator: Annotated[str | None, typer.Option(help="With --workers: the coordinator's account "
                                                      "(default: --account).")] = None,
    fee: Annotated[str, typer.Option(help="With --workers and no --serving-job: a worker's pay per prediction.")]
        = "1gwei",
    budget: Annotated[str, typer.Option(help="With --workers and no --serving-job: the serving budget.")]
        = "0.01ether",
    redundancy: Annotated[int, typer.Option(help="With --workers and no --serving-job: workers per request, "
                                                 "1 (spot-checked) or 3.")] = 3,
    byzantine: Annotated[int, typer.Option(hidden=True, help="The first N local workers answer wrongly.")] = 0,
) -> None:
    """Serve a registered model's predictions, paid per request through payment channels; with
    --workers or --coordinator the compute market's workers answer them, checked against each other."""
    import uvicorn

    from databright.cli._serve_market import ServingOptions, start_serving
    from databright.cli.serve import _start_node
    from databright.config import Home
    from databright.models import PaymentGate, Redeemer, ServedModel, VoucherStore, create_app

    redeem_at, redeem_after = parse_wei(threshold), parse_duration(deadline)
    home = Home(state.home_dir)
    home.read_config()
    chain = node = None
    with workspace() as probe:
        if state.rpc_url is None and probe.rpc_url is None:
            chain, node, state.rpc_url = _start_node(home)
    announced: Path | None = None
    try:
        with workspace() as ws:
            mm = ws.model_market
            owner = ws.signer()
            if mm.model(model_id).owner != owner.address:
                raise InputError(f"model {model_id} is not owned by {owner.address}; pass the owner's --account")
            served = ServedModel.load(mm, ws.store, model_id)
            serving = ServingOptions(workers, coordinator, serving_job, operator, parse_wei(fee), parse_wei(budget),
                                     redundancy, byzantine)
            local, backend, job_id = start_serving(ws, owner, served, serving)
            store = VoucherStore(home.root / "models" / f"vouchers-{ws.ledger.chain_id}-{model_id}.sqlite",
                                 fsync=fsync)
            gate = PaymentGate(mm, model_id, store)
            redeemer = Redeemer(gate, owner, threshold=redeem_at, deadline=redeem_after)
            app = create_app(served, gate, redeemer, backend)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Accepted connections inherit it: without it a response's body
            # waits for the ACK of its headers (Nagle against delayed ACK), 40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind(("127.0.0.1", port))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            announced = announce_file(home, ws.ledger.chain_id, model_id)
            announced.write_text(json.dumps({"url": url, "pid": os.getpid()}))
            by = f"; answered by the workers of serving job {job_id}" if job_id is not None else ""
            typer.echo(f"databright model serve: model {model_id} version {served.version} at {url}/v1/models/"
                       f"{model_id}/predict ({format_eth(gate.price())} per prediction{by})")
            sys.stdout.flush()
            if local is not None:
                # uvicorn raises the stopping signal again once it has shut down: ignoring it then
                # lets the serving job settle before the process exits
                for stopping in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(stopping, lambda *_: None)
            try:
                uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
            finally:
                store.close()
                if local is not None and job_id is not None:
                    typer.echo(f"serving job {job_id} settled: {local.settle(job_id)}")
                    local.stop()
    finally:
        if announced is not None:
            announced.unlink(missing_ok=True)
        if node is not None:
            home.retire_node()
            node.shutdown()
        if chain is not None:
            chain.close()


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="model")
