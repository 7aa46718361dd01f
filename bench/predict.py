"""Prediction latency with and without payments, side by side, and voucher verification alone.

One home on the embedded chain: a digits table dataset, a model trained and
registered on it, and a channel from a user to it. The same model is served
three times over HTTP by uvicorn on 127.0.0.1, in a process of its own: free,
paid with each voucher fsync'd before answering, and paid with each voucher
committed to the operating system only (survives kill -9 of the server, not a
crash of the machine). Every paid request carries a fresh cumulative voucher,
which the server verifies, checks against the channel (cached) and stores
before answering. Requests go to the three servers in turn, one table row per
request (where payment weighs most), vouchers signed before the clock starts;
the figures are the client's end-to-end latency.

Two more rows serve the same model free with its predictions answered by
compute-market workers instead (``model serve --workers``): a coordinator
(serving desk over SQLite) and three logical workers in the server's process,
on loopback, answering with redundancy 3 (two agreeing answers return) and
with redundancy 1 (one worker, no spot checks).

Voucher verification is timed alone against eth_account's recovery of the same
EIP-712 signature (the anchor).

Run: ``.venv/bin/python bench/predict.py`` (about a minute on this machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_account import Account
from eth_account.messages import encode_typed_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from databright.cli import main  # noqa: E402
from databright.models import PaymentGate, ServedModel, VoucherDomain, VoucherStore, create_app  # noqa: E402
from databright.workspace import Workspace  # noqa: E402
from tests.unit.models.conftest import digits_tables  # noqa: E402

PRICE = 10**12
# free; paid with each voucher fsync'd; paid with each voucher committed to the OS only
MODES = ("free", "fsync", "process", "workers3", "workers1")
PAID = ("fsync", "process")
LABELS = {"free": "free", "fsync": "paid, voucher fsync'd", "process": "paid, voucher survives kill -9 (no fsync)",
          "workers3": "free, answered by workers (redundancy 3)",
          "workers1": "free, answered by one worker (redundancy 1)"}


def _cli(home: Path, *args: object) -> None:
    try:
        main(["--home", str(home), *map(str, args)])
    except SystemExit as exc:
        if exc.code:
            raise


def _serve(app: Any) -> tuple[str, uvicorn.Server]:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as `databright model serve` does
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server


def _servers(home: Path, urls: Any, stop: Any) -> None:
    """Child process: serve model 1 free and paid until told to stop."""
    ws = Workspace(home)
    mm = ws.model_market
    served = ServedModel.load(mm, ws.store, 1)
    stores = [VoucherStore(home / f"bench-vouchers-{mode}.sqlite", fsync=mode == "fsync") for mode in PAID]
    served_urls, servers = [], []
    for gate in [None, *(PaymentGate(mm, 1, store) for store in stores)]:
        url, server = _serve(create_app(served, gate))
        served_urls.append(url)
        servers.append(server)
    halt = threading.Event()
    for redundancy in (3, 1):
        backend = _workers(home, ws.store, served, redundancy, halt, servers)
        url, server = _serve(create_app(served, None, backend=backend))
        served_urls.append(url)
        servers.append(server)
    urls.put(served_urls)
    stop.wait()
    halt.set()
    for server in servers:
        server.should_exit = True
    time.sleep(0.5)
    for store in stores:
        store.close()
    ws.close()


def _workers(home: Path, store: Any, served: ServedModel, redundancy: int, halt: threading.Event,
             servers: list[uvicorn.Server]) -> Any:
    """A coordinator serving model 1 with three logical workers; returns the prediction backend."""
    import hashlib
    import os

    from databright.compute import (
        Coordinator,
        RequestDomain,
        RequestSigner,
        ServingClient,
        ServingDesk,
        ServingJob,
        ServingWorker,
        connect,
        fingerprint,
        run_serving_workers,
    )
    from databright.compute._app import coordinator_app

    domain = RequestDomain(31415, "0x" + "c0" * 20)
    engine = connect(f"sqlite:///{home / f'bench-serving-{redundancy}.sqlite'}")
    desk = ServingDesk(engine, store, domain)
    owner = RequestSigner(domain, os.urandom(32))
    checkpoint = desk.store.get(served.checkpoint_cid)
    desk.add_job(ServingJob(1, 1, served.version, owner.address, served.spec, served.checkpoint_cid,
                            hashlib.sha256(checkpoint).hexdigest(), redundancy, 1, 10**30, 0.0))
    url, server = _serve(coordinator_app(Coordinator(engine, desk.store, domain), desk))
    servers.append(server)
    client = httpx.Client(base_url=url, timeout=60)
    env = fingerprint().as_dict()
    workers = [ServingWorker(client, RequestSigner(domain, os.urandom(32)), env, 0) for _ in range(3)]
    threading.Thread(target=run_serving_workers, args=(workers, halt, 1.0), daemon=True).start()
    return ServingClient(httpx.Client(base_url=url, timeout=60), owner, 1, served.spec.classes)


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": statistics.median(ordered) * 1e3,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
            "rps": len(ordered) / sum(ordered)}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per mode")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        paths = digits_tables(Path(tmp))
        for step in (["init", "--accounts", "4"], ["deploy"],
                     ["dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
                      "--seed", paths["seed"], "--validation", paths["validation"], "--evaluator", "dev2"],
                     ["--account", "dev1", "train", "1", "--steps", "40", "--register", "--price",
                      f"{PRICE}wei", "--royalty", "10%", "--json"]):
            _cli(home, *step)
        ws = Workspace(home, account="dev3")
        mm = ws.model_market
        user = ws.signer()
        channel = mm.open_channel(user, 1, 10**18)
        domain = VoucherDomain(ws.ledger.chain_id, mm.address)
        ws.close()  # the embedded chain is the servers' now
        # The servers run in a process of their own: in one process with the
        # client, the two would contend for the GIL on every request.
        context = multiprocessing.get_context("spawn")
        urls, stop = context.Queue(), context.Event()
        child = context.Process(target=_servers, args=(home, urls, stop))
        child.start()
        url_of = dict(zip(MODES, urls.get(timeout=300), strict=True))

        row = {f"p{i:02d}": float(i % 17) for i in range(64)}
        total = args.requests
        start = time.perf_counter()
        vouchers = [domain.sign(user, channel, (n + 1) * PRICE).to_header() for n in range(total + 10)]
        sign_ms = (time.perf_counter() - start) / len(vouchers) * 1e3
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        per_round = total // args.rounds
        with httpx.Client() as http:
            def post(mode: str, index: int) -> float:
                headers = {"X-Payment-Voucher": vouchers[index]} if mode in PAID else {}
                t0 = time.perf_counter()
                response = http.post(f"{url_of[mode]}/v1/models/1/predict", json={"rows": [row]}, headers=headers)
                elapsed = time.perf_counter() - t0
                response.raise_for_status()
                return elapsed

            for n in range(10):  # warm the servers, the channel cache and the price cache
                for mode in MODES:
                    post(mode, n)
            used = 10
            # one request per mode in turn, so drift in the machine's load falls on all modes alike
            for n in range(used, used + per_round * args.rounds):
                for mode in MODES:
                    times[mode].append(post(mode, n))
            used += per_round * args.rounds
        stop.set()
        child.join(timeout=60)
        for mode in PAID:
            store = VoucherStore(home / f"bench-vouchers-{mode}.sqlite")
            stored = store.get(channel)
            store.close()
            assert stored is not None and stored.amount == used * PRICE, "a server lost a voucher"

        parsed = VoucherDomain(domain.chain_id, domain.contract).signer
        sample = [domain.sign(user, channel, n) for n in range(1, 1001)]
        ours = []
        for voucher in sample:
            t0 = time.perf_counter()
            parsed(voucher)
            ours.append(time.perf_counter() - t0)
        anchor = []
        for voucher in sample[:200]:
            message = encode_typed_data(full_message=domain.typed_data(voucher.channel, voucher.amount))
            t0 = time.perf_counter()
            Account.recover_message(message, signature=voucher.signature)
            anchor.append(time.perf_counter() - t0)

        stats = {mode: _stats(times[mode]) for mode in MODES}
        verify, recover = statistics.median(ours) * 1e6, statistics.median(anchor) * 1e6
        free = stats["free"]["median_ms"]
        print(f"prediction requests, 1 row each, {len(times['free'])} per mode, modes in turn")
        print("| mode | median (ms) | p99 (ms) | requests/s | median vs free |")
        print("|---|---:|---:|---:|---:|")
        for mode in MODES:
            s = stats[mode]
            print(f"| {LABELS[mode]} | {s['median_ms']:.2f} | {s['p99_ms']:.2f} | {s['rps']:.0f} | "
                  f"{s['median_ms'] / free - 1:+.1%} |")
        print("goal: paying adds <= +10% to the median latency; workers answer in the server's process, "
              "so the server, the coordinator and the workers share its GIL")
        print("| voucher verification | median (us) | vs eth_account |")
        print("|---|---:|---:|")
        print(f"| eth_account Account.recover_message (anchor) | {recover:.0f} | 1x |")
        print(f"| databright VoucherDomain.signer | {verify:.0f} | {recover / verify:.0f}x faster (goal <= 1000 us) |")
        print(f"client signing (eth_account encode_typed_data + sign), not timed above: {sign_ms:.2f} ms per voucher")
        print(json.dumps({**stats, "verify_us": verify, "anchor_us": recover, "sign_ms": sign_ms}))


if __name__ == "__main__":
    main_bench()
