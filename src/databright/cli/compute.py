"""``databright coordinator``, ``databright worker`` and ``databright compute exposure|jobs|up``."""

from __future__ import annotations

import os
import sys
import threading
from typing import Annotated, Any, Optional

import typer

from databright.cli._common import deploy_market, emit, state, table, workspace
from databright.errors import InputError

__all__ = ["register"]

compute_app = typer.Typer(help="The compute market: jobs, workers and the exposure ledger.", no_args_is_help=True)


def _db_url(db: str | None) -> str:
    return db or f"sqlite:///{state.home_dir / 'coordinator.sqlite'}"


def coordinator_cmd(
    db: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the coordinator database.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    serve_only: Annotated[bool, typer.Option("--serve-only", help="Serve workers from the shared database "
                                             "without following ComputeMarket.")] = False,
    chain_id: Annotated[Optional[int], typer.Option(help="With --serve-only: the chain id of the domain.")] = None,
    market: Annotated[Optional[str], typer.Option(help="With --serve-only: the ComputeMarket address.")] = None,
    lease: Annotated[float, typer.Option(help="Lease length in seconds.")] = 120.0,
    interval: Annotated[float, typer.Option(help="Seconds between polls of the market.")] = 2.0,
) -> None:
    """Run a coordinator: accept ComputeMarket jobs, lease tasks to workers, settle the results."""
    import uvicorn

    from databright.compute import Coordinator, RequestDomain, ServingDesk, ServingLink, connect
    from databright.compute._app import coordinator_app
    from databright.compute._market import MarketLink

    engine = connect(_db_url(db))
    with workspace() as ws:
        link: MarketLink | None = None
        if serve_only:
            if chain_id is None or market is None:
                raise InputError("--serve-only needs --chain-id and --market")
            domain = RequestDomain(chain_id, market)
        else:
            compute = ws.compute_market
            domain = RequestDomain(ws.ledger.chain_id, compute.address)
        signer = None if serve_only else ws.signer()
        # The coordinator's key signs the stage-channel tokens of split jobs.
        coordinator = Coordinator(engine, ws.store, domain, lease_s=lease,
                                  key=None if signer is None else bytes(signer.key))
        desk = ServingDesk(engine, ws.store, domain)
        serving: ServingLink | None = None
        if signer is not None:
            link = MarketLink(coordinator, ws.compute_market, signer, lambda d: dataset_items(ws, d))
            serving = ServingLink(desk, ws.compute_market, ws.model_market, signer)
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                coordinator.tick()
                if link is not None and serving is not None:
                    link.poll()
                    serving.poll()

        coordinator.tick()  # resume: advance rounds finished before a crash
        ticker = threading.Thread(target=loop, daemon=True)
        ticker.start()
        server = uvicorn.Server(uvicorn.Config(coordinator_app(coordinator, desk), host=host, port=port,
                                               log_level="warning", access_log=False))
        sys.stderr.write(f"coordinator listening on http://{host}:{port}\n")
        try:
            server.run()
        finally:
            stop.set()


def dataset_items(ws: Any, dataset_id: int) -> tuple[list[tuple[str, str]], str | None]:
    import json

    from databright.storage import Manifest

    ws.sync()
    meta = json.loads(ws.index.dataset(dataset_id).metadata_json or "{}")
    proposals = ws.index.proposals(dataset_id=dataset_id, status="accepted")
    items: list[tuple[str, str]] = []
    for p in sorted(proposals, key=lambda p: p.entry_index or 0):
        items += [(str(i.cid), i.label) for i in Manifest.from_bytes(ws.store.get(p.manifest_cid))]
    return items, meta.get("validation")


def worker_cmd(
    coordinator: Annotated[str, typer.Option(help="Coordinator URL.")],
    chain_id: Annotated[int, typer.Option(help="Chain id of the ComputeMarket the coordinator serves.")],
    market: Annotated[str, typer.Option(help="ComputeMarket address (the signing domain).")],
    min_fee: Annotated[int, typer.Option(help="Minimum fee per task in wei.")] = 0,
    logical: Annotated[int, typer.Option(help="Logical workers in this process, each with its own key.")] = 1,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit when no worker has work.")] = False,
    stage_host: Annotated[str, typer.Option(help="Address on which a stage of a split job accepts its upstream "
                                            "neighbour (other stage workers must reach it).")] = "127.0.0.1",
) -> None:
    """Pull tasks from a coordinator and run them (one key per logical worker; the first is --account)."""
    import httpx

    from databright.compute import RequestDomain, RequestSigner, fingerprint
    from databright.compute._worker import Worker, run_workers

    if logical < 1:
        raise InputError("--logical must be at least 1")
    domain = RequestDomain(chain_id, market)
    first = os.urandom(32)
    if state.account:
        with workspace() as ws:
            first = bytes(ws.signer().key)
    keys = [first] + [os.urandom(32) for _ in range(logical - 1)]
    env = fingerprint().as_dict()
    with httpx.Client(base_url=coordinator, timeout=60.0) as client:
        workers = [Worker(client, RequestSigner(domain, k), env, min_fee) for k in keys]
        for worker in workers:
            worker.stage_host = stage_host
        done = run_workers(workers, until_idle=until_idle)
    emit({"tasks": done}, f"{done} tasks done")


@compute_app.command("exposure")
def exposure_cmd(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")],
    db: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the coordinator database.")] = None,
) -> None:
    """Print the exposure ledger: distinct items of the dataset each worker has been sent."""
    from databright.compute import connect
    from databright.compute._status import exposure_ledger

    rows = exposure_ledger(connect(_db_url(db)), dataset_id)
    emit(rows, table(f"Exposure of dataset {dataset_id}", ["worker", "items", "cap"], [[r["worker"], r["items"], r["cap_items"]] for r in rows]))


@compute_app.command("jobs")
def jobs_cmd(db: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the coordinator database.")] = None) -> None:
    """Jobs this coordinator database knows, with their rounds and results."""
    from databright.compute import connect
    from databright.compute._status import jobs_status

    rows = jobs_status(connect(_db_url(db)))
    emit(rows, table("Compute jobs", ["job", "dataset", "status", "round", "redundancy", "score", "report"],
                     [[r["job_id"], r["dataset_id"], r["status"], f"{r['round'] + 1}/{r['rounds']}",
                       r["redundancy"], r["score"], r["report"]] for r in rows]))


@compute_app.command("up")
def up_cmd(
    workers: Annotated[int, typer.Option(help="Logical workers to start.")] = 60,
    port: Annotated[int, typer.Option(help="Coordinator port (0: any free one).")] = 8700,
    min_fee: Annotated[str, typer.Option(help="Workers' minimum fee per task, e.g. 1gwei.")] = "0",
    interval: Annotated[float, typer.Option(help="Seconds between polls of the market.")] = 1.0,
) -> None:
    """Start a coordinator and N logical workers on this machine for the home (stop with Ctrl-C).

    On the embedded chain this process also serves the node, so that
    ``databright train --on-market`` in another shell reaches the same chain.
    """
    import signal

    from databright.cli._common import parse_wei
    from databright.cli._compute_local import LocalCompute
    from databright.cli.serve import _start_node
    from databright.config import Home

    if workers < 1:
        raise InputError("--workers must be at least 1")
    fee = parse_wei(min_fee)
    home = Home(state.home_dir)
    home.read_config()
    chain = server = None
    with workspace() as probe:
        if state.rpc_url is None and probe.rpc_url is None:
            chain, server, state.rpc_url = _start_node(home)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with workspace() as ws, LocalCompute(ws, workers, port=port, min_fee=fee) as local:
            emit({"coordinator": local.url, "workers": local.addresses, "node": state.rpc_url},
                 f"coordinator {local.url} with {workers} logical workers"
                 f"{', node ' + str(state.rpc_url) if chain is not None else ''} (Ctrl-C stops)")
            sys.stdout.flush()
            while not stop.wait(interval):
                local.poll()
    finally:
        if server is not None:
            home.retire_node()
            server.shutdown()
        if chain is not None:
            chain.close()


@compute_app.command("deploy")
def deploy_cmd() -> None:
    """Deploy ComputeMarket next to this chain's DataMarket (for a deployment made before it existed)."""
    from databright.chain import add_compute_market

    deploy_market("ComputeMarket", add_compute_market)


@compute_app.command("attest")
def attest_cmd() -> None:
    """This machine's attestation backend, measurement and environment fingerprint."""
    from databright.compute import describe_environment

    described = describe_environment()
    attestation: Any = described["attestation"]
    print_: Any = described["fingerprint"]
    emit(described, f"attestation: {attestation['label']}", f"measurement: {attestation['measurement']}",
         f"environment fingerprint: {print_.get('digest')}")


def register(root: typer.Typer) -> None:
    root.command("coordinator")(coordinator_cmd)
    root.command("worker")(worker_cmd)
    from databright.cli.serving import serving_app

    compute_app.add_typer(serving_app, name="serving")
    root.add_typer(compute_app, name="compute")
