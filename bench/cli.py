"""Command start-up and round trips: ``databright`` next to foundry's ``cast``.

One throwaway home with a running ``databright node`` (its own process), the
DataMarket deployed and a small table dataset. Each command runs N times as a
fresh process, as a user types it; the table shows the median wall time of
both tools, their CPU time (which a busy machine inflates less) and the
ratio of wall times, pairing commands that do the same kind of work:

- ``--help``: start-up alone;
- a read: ``dataset show 1 --json`` (index sync and contract reads) against
  ``cast call get_dataset(1)``, and ``proposal list --json`` against
  ``cast block-number``, as are the other reads people run often (``model list``,
  ``shares``, ``compute jobs``);
- a write: ``vote`` (unlock the keystore, check, send, wait for the receipt,
  update the index) against ``cast send deposit(1)`` with the same dev key
  (sign, send, wait for the receipt). Each ``vote`` gets a proposal of its own,
  made before the clock starts.

Run: ``.venv/bin/python bench/cli.py [--runs N]`` (cast from ``npm install``).
Goals: ``--help`` <= 0.25 s, reads <= 0.6 s, a vote <= 1.0 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._servers import foundry_binary, free_port, stop, wait_for_rpc  # noqa: E402

BIN = Path(sys.executable).parent / "databright"


def run(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}…: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


Timing = tuple[float, float]  # median wall seconds, median CPU seconds (user + system) of the process


def timed(args: list[str], runs: int) -> Timing:
    return timed_each([args] * runs)


def timed_each(commands: list[list[str]]) -> Timing:
    wall, cpu = [], []
    for args in commands:
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        run(args)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall.append(time.perf_counter() - start)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (median)")
    runs = parser.parse_args().runs
    cast = foundry_binary("cast")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        db = [str(BIN), "--home", str(home)]
        run([*db, "init", "--accounts", "2"])
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        node = subprocess.Popen([*db, "node", "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_for_rpc(url, node)
            run([*db, "deploy"])
            seed = Path(tmp) / "seed.csv"
            seed.write_text("x,y,label\n" + "".join(f"{i},{i * 0.5},{'odd' if i % 2 else 'even'}\n"
                                                    for i in range(20)))
            run([*db, "dataset", "create", "numbers", "--kind", "table", "--classes", "odd,even", "--seed",
                 str(seed)])
            proposals = []
            for i in range(runs):
                batch = Path(tmp) / f"batch{i}.csv"
                batch.write_text(f"x,y,label\n{1000 + i},1.0,odd\n")
                out = run([*db, "--account", "dev1", "propose", "1", str(batch), "--json"])
                proposals.append(str(json.loads(out)["proposal_id"]))
            market = json.loads((home / "deployments" / "31415.json").read_text())["contracts"]["DataMarket"]
            address = str(market["address"])
            key = _dev_key(home)
            head = timed([cast, "block-number", "--rpc-url", url], runs)
            rows = [
                ("--help", timed([*db, "--help"], runs), "cast --help", timed([cast, "--help"], runs)),
                ("dataset show 1 --json", timed([*db, "dataset", "show", "1", "--json"], runs),
                 "cast call get_dataset(1)",
                 timed([cast, "call", address, "get_dataset(uint256)", "1", "--rpc-url", url], runs)),
                ("proposal list --json", timed([*db, "proposal", "list", "--json"], runs), "cast block-number", head),
                ("model list --json", timed([*db, "model", "list", "--json"], runs), "cast block-number", head),
                ("shares dev0 --json", timed([*db, "shares", "dev0", "--json"], runs), "cast block-number", head),
                ("compute jobs --json", timed([*db, "compute", "jobs", "--json"], runs), "cast block-number", head),
                ("vote P yes", timed_each([[*db, "vote", p, "yes"] for p in proposals]),
                 "cast send deposit(1)",
                 timed([cast, "send", address, "deposit(uint256)", "1", "--value", "1", "--private-key", key,
                        "--rpc-url", url], runs)),
            ]
        finally:
            stop(node)
    print(f"median of {runs} runs each, a fresh process per run, node at 127.0.0.1 "
          f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}); wall and CPU (user + system) seconds")
    print(f"{'databright':<24}{'wall':>7}{'cpu':>7}   {'cast':<26}{'wall':>7}{'cpu':>7}{'ratio':>7}")
    for ours, (wall, cpu), theirs, (cast_wall, cast_cpu) in rows:
        print(f"{ours:<24}{wall:7.3f}{cpu:7.3f}   {theirs:<26}{cast_wall:7.3f}{cast_cpu:7.3f}"
              f"{wall / cast_wall:6.1f}x")


def _dev_key(home: Path) -> str:
    """dev0's private key for cast, from its keystore (the published dev password)."""
    from databright.chain import Keystore
    from databright.workspace import DEV_PASSWORD

    return "0x" + bytes(Keystore(home / "keystore").unlock("dev0", DEV_PASSWORD).key).hex()


if __name__ == "__main__":
    main()
