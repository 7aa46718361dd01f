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
  labels to stage 1 over loopback TCP and receiving gradients back; stage 1
  sends the gradient before computing its weight gradients, so the two stages
  overlap (see ``databright.compute._pipeline``).

The worker processes start once and train the three settings in turn, R times
(the order rotating), so the settings share the machine's load alike; each
column is the median over the R epochs. The split epoch's final weights are
checked to be bitwise those of the single worker (same data, seed and steps).

Columns: epoch time (first worker's start to last worker's end on the
system-wide monotonic clock, plus averaging for data parallel), forward-pass
time (summed over the workers), communication time (stage 0's time on the
channel beyond stage 1's forward and input-gradient pass: transfers, wake-ups,
stalls), bytes crossing the cut per step, and the epoch extrapolated to a 1 Gbps
link (communication replaced by bytes x 8 / 1e9 s; latency not added). A
profile below the table gives each worker's CPU time against the wall time and
the machine's load average, since other processes compete for the same cores.
Two more columns count CPU time, which other load does not stretch: all the
workers' CPU ("CPU s", the pipeline's own overhead shows as its excess over one
worker), and the CPU time on the epoch's critical path ("path CPU s": one
worker's all; data parallel's slower worker; for splitting stage 0's all plus
stage 1's from receiving an activation to sending its gradient back, the rest of
stage 1's work overlapping stage 0's), which is the epoch time when each worker
has a core of its own and the transfers cost what they cost here.
Goal: 2-way splitting <= 1.10x the single worker's epoch time (paper: 1.17x).

Run: ``.venv/bin/python bench/splitting.py [--items N] [--batch B] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import resource
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databright.compute import fedavg  # noqa: E402
from databright.compute._pipeline import StageTimes, run_stage, stage_batches  # noqa: E402
from databright.compute._splitting import Stage, cut_spec, join_states, split_state  # noqa: E402
from databright.ml import ModelSpec, build_model, load_checkpoint, save_checkpoint, single_thread  # noqa: E402

GBPS = 1e9
SINGLE, PARALLEL, SPLIT = "standard, 1 worker", "no splitting, 2 workers", "2-way splitting, 2 workers"


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


def _wire(
    job: dict[str, Any], commands: Connection, out: Connection
) -> tuple[socket.socket | None, socket.socket | None]:
    """Stage 1 listens on a port of its choosing and says which; stage 0 is told it and connects."""
    if job["k"] == 1:
        return None, None
    if job["index"] == 1:
        with socket.create_server(("127.0.0.1", 0)) as server:
            out.send_bytes(str(server.getsockname()[1]).encode())
            upstream, _ = server.accept()
        return upstream, None
    return None, socket.create_connection(("127.0.0.1", int(commands.recv_bytes())))


def _worker(job: dict[str, Any], commands: Connection, out: Connection) -> None:
    """One worker process: set up once, then train one epoch per command and report it."""
    spec: ModelSpec = job["spec"]
    stages = cut_spec(spec, job["k"], balance="flops")
    whole = {k: v.detach().clone() for k, v in build_model(spec, 0).state_dict().items()}
    index = job["index"]
    x, y = _data(job["items"])
    lo, hi = job["shard"]
    upstream, downstream = _wire(job, commands, out)
    while commands.recv_bytes() == b"epoch":
        stage = Stage(stages[index], split_state(stages, whole)[index])
        batches = stage_batches(spec, x[lo:hi], y[lo:hi], steps=job["steps"], seed=1) if index == 0 else None
        with single_thread():
            # time.monotonic is the system-wide clock, so the workers' stamps compare.
            start, cpu = time.monotonic(), time.process_time()
            blocked = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
            times = run_stage(stage, steps=job["steps"], batch=spec.batch_size, upstream=upstream,
                              downstream=downstream, batches=batches)
            end, cpu = time.monotonic(), time.process_time() - cpu
            blocked = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - blocked
        # Plain bytes back to the parent (JSON and safetensors): nothing is unpickled.
        out.send_bytes(json.dumps([start, end, cpu, blocked, dataclasses.asdict(times)]).encode())
        out.send_bytes(save_checkpoint(stage.state()))


@dataclass
class Epoch:
    """One worker's epoch as it reported it."""

    start: float
    end: float
    cpu: float
    blocked: int  # voluntary context switches: how often the worker waited
    times: StageTimes
    state: dict[str, torch.Tensor]


class Workers:
    """The processes of one setting, kept running across repeats."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        # spawn, not fork: a forked child inherits the parent's OpenMP pool and can hang in it.
        context = mp.get_context("spawn")
        self.links: list[tuple[Connection, Connection, BaseProcess]] = []
        for job in jobs:
            receive, report = context.Pipe(duplex=False)
            listen, command = context.Pipe(duplex=False)
            proc = context.Process(target=_worker, args=(job, listen, report), daemon=True)
            proc.start()
            self.links.append((command, receive, proc))
        if jobs[0]["k"] == 2:
            by_index = {job["index"]: link for job, link in zip(jobs, self.links, strict=True)}
            by_index[0][0].send_bytes(by_index[1][1].recv_bytes())

    def epoch(self) -> list[Epoch]:
        for command, _, _ in self.links:
            command.send_bytes(b"epoch")
        epochs = []
        for _, receive, _ in self.links:
            start, end, cpu, blocked, times = json.loads(receive.recv_bytes())
            state = load_checkpoint(receive.recv_bytes())
            epochs.append(Epoch(start, end, cpu, blocked, StageTimes(**times), state))
        return epochs

    def close(self) -> None:
        for command, _, proc in self.links:
            command.send_bytes(b"stop")
            proc.join(60)


def _row(epochs: list[Epoch], extra: float, comm: float, per_step: float, steps: int,
         path: float) -> dict[str, float]:
    epoch = max(e.end for e in epochs) - min(e.start for e in epochs) + extra
    return {
        "path": path + extra,
        "epoch": epoch,
        "forward": sum(e.times.forward for e in epochs),
        "comm": comm,
        "bytes": per_step,
        "1g": epoch - comm + steps * per_step * 8 / GBPS,
        "cpu": sum(e.cpu for e in epochs),
        **{f"cpu{i}": e.cpu for i, e in enumerate(epochs)},
        **{f"waits{i}": e.blocked / steps for i, e in enumerate(epochs)},
    }


def _measure(name: str, workers: Workers, steps: int) -> tuple[dict[str, float], list[Epoch]]:
    epochs = workers.epoch()
    if name == SINGLE:
        return _row(epochs, 0.0, 0.0, 0, steps, epochs[0].times.cpu), epochs
    if name == PARALLEL:
        tick = time.perf_counter()
        fedavg([e.state for e in epochs], [1, 1])
        extra = time.perf_counter() - tick
        return _row(epochs, extra, 0.0, 0, steps, max(e.times.cpu for e in epochs)), epochs
    s0, s1 = epochs[0].times, epochs[1].times
    comm = max(0.0, s0.channel - s1.reply)
    # Stage 0 never waits for itself, and waits for stage 1 from the activation leaving to the
    # gradient arriving; stage 1's deferred weight gradients and update run meanwhile, unless
    # they take longer than all of stage 0's work.
    path = max(s0.cpu + s1.reply_cpu, s1.cpu)
    return _row(epochs, 0.0, comm, (s0.bytes_sent + s1.bytes_sent) / steps, steps, path), epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="epochs per setting; columns are medians")
    a = parser.parse_args()
    spec, steps = _spec(a.batch), a.items // a.batch
    stages = cut_spec(spec, 2, balance="flops")
    base = {"spec": spec, "items": a.items}
    half = a.items // 2
    settings = {
        SINGLE: Workers([base | {"k": 1, "index": 0, "steps": steps, "shard": (0, a.items)}]),
        PARALLEL: Workers([base | {"k": 1, "index": 0, "steps": steps // 2, "shard": (i * half, (i + 1) * half)}
                           for i in range(2)]),
        SPLIT: Workers([base | {"k": 2, "index": i, "steps": steps, "shard": (0, a.items)} for i in (0, 1)]),
    }
    load_before = os.getloadavg()
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    identical = True
    names = list(settings)
    for r in range(a.repeats):
        last: dict[str, list[Epoch]] = {}
        for name in names[r % 3:] + names[: r % 3]:
            row, last[name] = _measure(name, settings[name], steps)
            rows[name].append(row)
        joined = join_states(stages, [e.state for e in last[SPLIT]])
        single = last[SINGLE][0].state
        identical &= set(joined) == set(single) and all(torch.equal(joined[k], single[k]) for k in single)
    load_after = os.getloadavg()
    for workers in settings.values():
        workers.close()
    median = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
              for name, runs in rows.items()}
    one = median[SINGLE]["epoch"]
    cut = stages[1].input_shape
    print(f"VGG-style CNN {spec.hidden}, 32x32x3, batch {a.batch}, {steps} steps per epoch, "
          f"cut before layer {stages[1].first_layer} (activation {cut}), median of {a.repeats}")
    one_cpu, one_path = median[SINGLE]["cpu"], median[SINGLE]["path"]
    print(f"{'setting':<28} {'epoch s':>8} {'x 1 worker':>10} {'forward s':>9} {'comm s':>7} "
          f"{'bytes/step':>11} {'epoch @1Gbps s':>15} {'x @1Gbps':>8} {'CPU s':>6} {'x CPU':>6} "
          f"{'path CPU s':>10} {'x path':>6}")
    for name, row in median.items():
        print(f"{name:<28} {row['epoch']:8.3f} {row['epoch'] / one:10.2f} {row['forward']:9.3f} "
              f"{row['comm']:7.3f} {row['bytes']:11,.0f} {row['1g']:15.3f} {row['1g'] / one:8.2f} "
              f"{row['cpu']:6.3f} {row['cpu'] / one_cpu:6.2f} {row['path']:10.3f} {row['path'] / one_path:6.2f}")
    split = median[SPLIT]
    # Each repeat's split epoch against the same repeat's single worker, measured moments apart,
    # shares more of the load than medians taken over minutes do.
    paired = statistics.median(s["epoch"] / o["epoch"] for s, o in zip(rows[SPLIT], rows[SINGLE], strict=True))
    print(f"2-way splitting against 1 worker in the same repeat: median {paired:.2f}x, each "
          + ", ".join(f"{s['epoch'] / o['epoch']:.2f}x" for s, o in zip(rows[SPLIT], rows[SINGLE], strict=True)))
    print(f"2-way splitting's weights bitwise equal to 1 worker's: {'yes' if identical else 'NO'}")
    # With other work on the machine a worker gets a fraction of a core: CPU over wall says how much.
    print(f"profile (medians): 1 worker {one_cpu:.3f} s CPU in {one:.3f} s ({one_cpu / one:.0%} of a core); "
          f"split stage 0 {split['cpu0']:.3f} s + stage 1 {split['cpu1']:.3f} s CPU in {split['epoch']:.3f} s "
          f"({split['cpu'] / split['epoch']:.0%} of a core), communication {split['comm'] / split['epoch']:.1%} "
          f"of the epoch; waits per step: stage 0 {split['waits0']:.2f}, stage 1 {split['waits1']:.2f}")
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
