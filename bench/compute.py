"""The compute market on loopback: one job with redundancy 1 and with 3, and claim throughput.

A coordinator (uvicorn, SQLite, a local blob store) serves logical workers in
this process over real HTTP on 127.0.0.1. For each redundancy the table shows
wall time, the workers' own compute (the time ``run_task`` took, summed), and
the coordinator's overhead beyond that compute: wall minus compute, which
holds HTTP, signature checks, the SQL store, blob transfer and aggregation,
over compute (goal <= 5%; the paper reports ~177 ms of SGX/TLS overhead per
run). Then the coordinator's claim rate with signature checks: many workers
claim tasks of a large redundancy-1 job as fast as one client can ask.

Run: ``.venv/bin/python bench/compute.py [--items N] [--steps E] [--claims N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databright.compute import Coordinator, JobConfig, RequestDomain, RequestSigner, connect  # noqa: E402
from databright.compute._app import coordinator_app  # noqa: E402
from databright.compute._schema import assignments  # noqa: E402
from databright.compute._worker import Worker, run_workers  # noqa: E402
from databright.ml import ModelSpec  # noqa: E402
from databright.storage import LocalBlobStore, canonical_json  # noqa: E402

DOMAIN = RequestDomain(1337, "0x" + "c0" * 20)
FINGERPRINT = {"bench": "1"}


def _items(store: LocalBlobStore, n: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        v = rng.normal(size=8)
        row = {f"f{j}": float(x) for j, x in enumerate(v)} | {"row": i}
        out.append((str(store.put(canonical_json(row))), "pos" if v[:4].sum() > 0 else "neg"))
    return out


def _serve(coordinator: Coordinator) -> tuple[uvicorn.Server, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(coordinator_app(coordinator), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--claims", type=int, default=400)
    args = parser.parse_args()
    spec = ModelSpec(kind="mlp", input="table", features=tuple(f"f{j}" for j in range(8)), classes=("neg", "pos"),
                     hidden=(64,), batch_size=0)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalBlobStore(Path(tmp) / "blobs")
        items = _items(store, args.items)
        engine = connect(f"sqlite:///{Path(tmp) / 'coordinator.sqlite'}")
        coordinator = Coordinator(engine, store, DOMAIN)
        server, url = _serve(coordinator)
        print(f"{args.items} items, 20 shards (5% cap), {args.rounds} rounds of {args.steps} local steps")
        print(f"{'redundancy':>10} {'wall s':>8} {'compute s':>10} {'overhead s':>11} {'overhead':>9}")
        with httpx.Client(base_url=url, timeout=120) as client:
            for job_id, redundancy in ((1, 1), (2, 3)):
                coordinator.add_job(JobConfig(job_id, job_id, spec, args.rounds, args.steps, redundancy, 500,
                                              10**18), items)
                workers = [Worker(client, RequestSigner(DOMAIN, os.urandom(32)), FINGERPRINT, 1)
                           for _ in range(20 * redundancy)]
                started = time.perf_counter()
                run_workers(workers, until_idle=True)
                wall = time.perf_counter() - started
                with engine.connect() as conn:
                    compute = float(conn.execute(select(func.sum(assignments.c.compute_s)).where(
                        assignments.c.worker.in_([w.signer.address for w in workers]))).scalar_one())
                print(f"{redundancy:>10} {wall:>8.2f} {compute:>10.2f} {wall - compute:>11.2f} "
                      f"{(wall - compute) / compute:>9.1%}")
            # Claim throughput: every claim is a signed request whose signature and nonce are checked.
            coordinator.add_job(JobConfig(3, 3, spec, 1, 1, 1, 10_000, 10**18), items[: args.claims])
            signers = [RequestSigner(DOMAIN, os.urandom(32)) for _ in range(args.claims)]
            for s in signers:
                coordinator.register_worker(s.address, FINGERPRINT, 1)
            # one shard of all items: one claim each until the slot is taken, so force many slots
            started = time.perf_counter()
            for s in signers:
                client.post("/v1/claim", headers=s.headers("POST", "/v1/claim"))
            elapsed = time.perf_counter() - started
            print(f"claims with signature checks over HTTP: {args.claims / elapsed:.0f}/s "
                  f"({elapsed / args.claims * 1000:.2f} ms each)")
        server.should_exit = True
        engine.dispose()


if __name__ == "__main__":
    main()
