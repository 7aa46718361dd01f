"""A served ``databright node`` and an anvil set up alike, and transcript comparison.

Both chains get the same chain id, hardfork, gas limit and the same funded keys
(our genesis funds the home's dev accounts; anvil gets them with
``anvil_setBalance``), so a client that sends the same sequence to both signs the
same transactions and the two transcripts can be compared field by field.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eth_account import Account

from tests._servers import ROOT, foundry_binary, free_port, rpc, stop, wait_for_rpc

BIN = Path(sys.executable).parent / "databright"
HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts" / "conformance"
CHAIN_ID = 31415
FUNDS = 10_000 * 10**18
DEV_PASSWORD = "databright"


@functools.cache
def node_has_dev_flag() -> bool:
    """Whether ``databright node`` gates development methods behind ``--dev``."""
    result = subprocess.run([str(BIN), "node", "--help"], capture_output=True, text=True, timeout=60)
    return "--dev" in result.stdout


class ServedNode:
    """``databright node`` on a home of its own, as a subprocess on a free port."""

    def __init__(self, home: Path, accounts: int = 3) -> None:
        self.home = home
        if not (home / "config.json").exists():
            subprocess.run([str(BIN), "--home", str(home), "init", "--accounts", str(accounts)],
                           check=True, capture_output=True, timeout=120)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "node.log"

    def start(self, timeout: float = 60.0, dev: bool = True) -> ServedNode:
        """Start it; with ``dev``, development methods are on if the node gates them."""
        command = [str(BIN), "--home", str(self.home), "node", "--port", str(self.port)]
        if dev and node_has_dev_flag():
            command.append("--dev")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            wait_for_rpc(self.url, self.process, timeout)
        except RuntimeError as exc:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{exc}; its log ends: {' | '.join(tail)}") from None
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None:
            stop(self.process, sig)
            self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @functools.cached_property
    def keys(self) -> list[str]:
        """The private keys of the home's dev accounts, in name order."""
        keys = []
        for path in sorted((self.home / "keystore").glob("dev*.json"), key=lambda p: int(p.stem[3:])):
            keys.append("0x" + bytes(Account.decrypt(json.loads(path.read_text()), DEV_PASSWORD)).hex())
        return keys


class AnvilTwin:
    """anvil with our chain id, hardfork and gas limit, and our keys funded."""

    def __init__(self, keys: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [foundry_binary("anvil"), "--host", "127.0.0.1", "--port", str(self.port),
             "--chain-id", str(CHAIN_ID), "--hardfork", "prague", "--gas-limit", "30000000",
             # anvil gives block 1 the configured base fee; a spec chain (geth, ours)
             # gives it the genesis fee (1 gwei) lowered by 12.5% for an empty parent.
             "--base-fee", "875000000",
             "--accounts", "1", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_rpc(self.url, self.process)
        for key in keys:
            rpc(self.url, "anvil_setBalance", [Account.from_key(key).address, hex(FUNDS)])

    def close(self) -> None:
        stop(self.process)


def wait_receipt(url: str, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return dict(receipt)
        time.sleep(0.02)
    raise AssertionError(f"no receipt for {tx_hash} at {url} within {timeout:.0f}s")


class Pair:
    """A fresh served node and its anvil twin, with the keys that are funded on both."""

    def __init__(self, tmp: Path) -> None:
        self.ours = ServedNode(tmp / "home").start()
        self.keys = self.ours.keys
        self.anvil = AnvilTwin(self.keys)
        # One block with a transfer in it on both, so that from block 1 on the two
        # chains' base fees (and so the fees clients pick) are the same.
        warmup = Account.from_key(self.keys[-1]).sign_transaction({
            "to": "0x" + "00" * 19 + "01", "value": 1, "nonce": 0, "chainId": CHAIN_ID, "gas": 21_000,
            "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}).raw_transaction
        for url in self.urls.values():
            tx_hash = rpc(url, "eth_sendRawTransaction", ["0x" + bytes(warmup).hex()])
            wait_receipt(url, tx_hash)

    @property
    def urls(self) -> dict[str, str]:
        return {"databright": self.ours.url, "anvil": self.anvil.url}

    def close(self) -> None:
        self.ours.kill(signal.SIGTERM)
        self.anvil.close()


@functools.cache
def probe_artifact() -> dict[str, Any]:
    """Probe.sol compiled by the npm ``solc`` package: ``{abi, bytecode}``."""
    out = subprocess.run(["node", str(HERE / "clients" / "compile.mjs"), str(HERE / "Probe.sol"), "Probe"],
                         check=True, capture_output=True, text=True, timeout=120)
    artifact: dict[str, Any] = json.loads(out.stdout)
    return artifact


def run_script(script: str, url: str, keys: list[str], timeout: float = 120.0) -> dict[str, Any]:
    """Run a client script (node) against ``url``; its stdout is its transcript."""
    env = {**os.environ, "RPC_URL": url, "KEYS": json.dumps(keys),
           "ARTIFACT": json.dumps(probe_artifact()), "NODE_PATH": str(ROOT / "node_modules")}
    out = subprocess.run(["node", str(HERE / "clients" / script)], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{script} against {url} failed: {out.stderr[-4000:]}")
    transcript: dict[str, Any] = json.loads(out.stdout)
    return transcript


# Fields that legitimately differ between the two chains: times, anything that
# hashes a header (the genesis blocks differ: anvil funds its own account too) or
# the whole state, and the client's name.
VOLATILE_KEYS = frozenset({
    "timestamp", "blockHash", "parentHash", "stateRoot", "mixHash", "prevRandao", "size",
    "clientVersion", "totalDifficulty", "parentBeaconBlockRoot", "blockTimestamp",
})


def normalise(value: Any, key: str | None = None, volatile: frozenset[str] = VOLATILE_KEYS) -> Any:
    if key in volatile:
        return "<volatile>"
    if isinstance(value, dict):
        return {k: normalise(v, k, volatile) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [normalise(v, None, volatile) for v in value]
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return value


def differences(ours: Any, theirs: Any, path: str = "") -> Iterator[str]:
    """Every place where the two normalised transcripts disagree."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for k in sorted(set(ours) | set(theirs)):
            if k not in ours:
                yield f"{path}.{k}: missing here, anvil has {json.dumps(theirs[k])[:200]}"
            elif k not in theirs:
                yield f"{path}.{k}: extra here ({json.dumps(ours[k])[:200]}), anvil has none"
            else:
                yield from differences(ours[k], theirs[k], f"{path}.{k}")
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            yield from differences(a, b, f"{path}[{i}]")
    elif ours != theirs:
        yield f"{path}: ours {json.dumps(ours)[:300]} != anvil {json.dumps(theirs)[:300]}"


def write_transcripts(client: str, transcripts: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, transcript in transcripts.items():
        (ARTIFACTS / f"{client}-{name}.json").write_text(json.dumps(transcript, indent=2, sort_keys=True))
