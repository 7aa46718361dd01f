"""Model splitting on loopback workers (the paper's Figure 4), in one run.

Three ways to train one synthetic epoch of a small VGG-style CNN (two
conv-ReLU-maxpool blocks and a linear head, the CNN a ModelSpec describes) on
CIFAR-shaped 32x32x3 inputs, each worker a process of its own on one torch
thread:

* "standard, 1 worker": the whole model, every step, in one process;
* "no splitting, 2 workers": data parallel, each worker trains half the epoch's
  steps on its own copy, then the coordinator averages the two (FedAvg);
* "2-way splitting, 2 workers": the spec cut in two by FLOPs
  (``cut_spec(spec, 2, balance="flops")``), stage 0 sending activations and
  labels to stage 1 over loopback TCP and receiving gradients back.

Columns: epoch time (the slowest worker's loop, plus averaging for data
parallel), forward-pass time (summed over the stages), communication time
(stage 0's time in the channel minus stage 1's compute, i.e. what is left for
moving bytes), bytes crossing the cut per step, and the epoch extrapolated to a
1 Gbps link (communication replaced by bytes x 8 / 1e9 s; latency not added).
Goal: 2-way splitting <= 1.10x the single worker's epoch time (paper: 1.17x).

Run: ``.venv/bin/python bench/splitting.py [--items N] [--batch B] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import socket
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databright.compute import fedavg  # noqa: E402
from databright.compute._pipeline import StageTimes, run_stage, stage_batches  # noqa: E402
from databright.compute._splitting import Stage, cut_spec, split_state  # noqa: E402
from databright.ml import ModelSpec, build_model, load_checkpoint, save_checkpoint, single_thread  # noqa: E402

GBPS = 1e9


def _spec(batch: int) -> ModelSpec:
    return ModelSpec(
        kind="cnn",
        input="image",
        image_shape=(3, 32, 32),
        classes=tuple(f"c{i}" for i in range(10)),
        hidden=(32, 64),
        batch_size=batch,
        lr=1e-3,
    )


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, size=n)


def _worker(args: dict[str, Any], out: Connection) -> None:
    """One worker process: build its stage, wire its sockets, run the loop, report times."""
    spec: ModelSpec = args["spec"]
    stages = cut_spec(spec, args["k"], balance="flops")
    whole = {k: v.detach().clone() for k, v in build_model(spec, 0).state_dict().items()}
    index = args["index"]
    stage = Stage(stages[index], split_state(stages, whole)[index])
    upstream = downstream = None
    if args["k"] == 2 and index == 1:
        with socket.create_server(("127.0.0.1", args["port"])) as server:
            upstream, _ = server.accept()
    elif args["k"] == 2:
        downstream = _connect(args["port"])
    x, y = _data(args["items"])
    lo, hi = args["shard"]
    batches = stage_batches(spec, x[lo:hi], y[lo:hi], steps=args["steps"], seed=1) if index == 0 else None
    with single_thread():
        start = time.perf_counter()
        times = run_stage(stage, steps=args["steps"], batch=spec.batch_size, upstream=upstream,
                          downstream=downstream, batches=batches)
        wall = time.perf_counter() - start
    # Plain bytes back to the parent (JSON and safetensors): nothing is unpickled.
    out.send_bytes(json.dumps([wall, dataclasses.asdict(times)]).encode())
    out.send_bytes(save_checkpoint(stage.state()))


def _connect(port: int) -> socket.socket:
    deadline = time.monotonic() + 60
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _run(jobs: list[dict[str, Any]]) -> list[tuple[float, StageTimes, Any]]:
    # spawn, not fork: a forked child inherits the parent's OpenMP pool and can hang in it.
    context = mp.get_context("spawn")
    pipes, procs = [], []
    for job in jobs:
        receive, send = context.Pipe(duplex=False)
        proc = context.Process(target=_worker, args=(job, send))
        proc.start()
        pipes.append(receive)
        procs.append(proc)
    results = []
    for pipe in pipes:
        wall, times = json.loads(pipe.recv_bytes())
        results.append((wall, StageTimes(**times), load_checkpoint(pipe.recv_bytes())))
    for proc in procs:
        proc.join(60)
    return results


def _row(name: str, epoch: float, forward: float, comm: float, per_step: float, steps: int) -> dict[str, Any]:
    at_1g = epoch - comm + steps * per_step * 8 / GBPS
    return {"name": name, "epoch": epoch, "forward": forward, "comm": comm, "bytes": per_step, "1g": at_1g}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="best of R runs per row")
    a = parser.parse_args()
    spec, steps = _spec(a.batch), a.items // a.batch
    stages = cut_spec(spec, 2, balance="flops")
    base = {"spec": spec, "items": a.items}
    best: dict[str, dict[str, Any]] = {}
    for _ in range(a.repeats):
        rows = []
        (wall, t, _), = _run([base | {"k": 1, "index": 0, "steps": steps, "shard": (0, a.items)}])
        rows.append(_row("standard, 1 worker", wall, t.forward, 0.0, 0, steps))
        half = a.items // 2
        results = _run([base | {"k": 1, "index": 0, "steps": steps // 2, "shard": (i * half, (i + 1) * half)}
                        for i in range(2)])
        tick = time.perf_counter()
        fedavg([r[2] for r in results], [1, 1])
        average = time.perf_counter() - tick
        rows.append(_row("no splitting, 2 workers", max(r[0] for r in results) + average,
                         sum(r[1].forward for r in results), 0.0, 0, steps))
        port = _free_port()
        first, second = _run([base | {"k": 2, "index": i, "steps": steps, "shard": (0, a.items),
                                      "port": port} for i in (1, 0)])
        s1, s0 = first[1], second[1]
        comm = max(0.0, s0.channel - s1.compute)
        rows.append(_row("2-way splitting, 2 workers", max(first[0], second[0]), s0.forward + s1.forward,
                         comm, (s0.bytes_sent + s1.bytes_sent) / steps, steps))
        for row in rows:
            if row["name"] not in best or row["epoch"] < best[row["name"]]["epoch"]:
                best[row["name"]] = row
    single = best["standard, 1 worker"]["epoch"]
    cut = stages[1].input_shape
    print(f"VGG-style CNN {spec.hidden}, 32x32x3, batch {a.batch}, {steps} steps per epoch, "
          f"cut before layer {stages[1].first_layer} (activation {cut}), best of {a.repeats}")
    print(f"{'setting':<28} {'epoch s':>8} {'x 1 worker':>10} {'forward s':>9} {'comm s':>7} "
          f"{'bytes/step':>11} {'epoch @1Gbps s':>15} {'x @1Gbps':>8}")
    for row in best.values():
        print(f"{row['name']:<28} {row['epoch']:8.3f} {row['epoch'] / single:10.2f} {row['forward']:9.3f} "
              f"{row['comm']:7.3f} {row['bytes']:11,.0f} {row['1g']:15.3f} {row['1g'] / single:8.2f}")


if __name__ == "__main__":
    main()
