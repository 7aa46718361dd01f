"""Soak: several senders against a served node that is ``kill -9``'d at random moments.

Each sender has its own key and sends transfers as a wallet does (nonce from the
node after any failure, otherwise counted up locally; some sends wait for their
receipt, most do not). A seeded killer SIGKILLs the node and restarts it on the
same home. At the end every transaction whose hash the node acknowledged is
either mined or reported as dropped with a reason, and every sender's mined
nonces are distinct and below its final nonce.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account

from tests._servers import rpc, wait_for_rpc
from tests.conformance._harness import CHAIN_ID, ServedNode

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("DATABRIGHT_SOAK_SECONDS", "45"))
SENDERS = 4
SEED = 8
SETTLE_S = 20.0


@dataclass
class Sender:
    key: str
    rng: random.Random
    acked: dict[str, int] = field(default_factory=dict)  # hash -> nonce
    attempts: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(Account.from_key(self.key).address)


def _send_loop(sender: Sender, node: ServedNode, stop: threading.Event) -> None:
    account = Account.from_key(sender.key)
    nonce: int | None = None
    while not stop.is_set():
        try:
            if nonce is None:
                nonce = int(rpc(node.url, "eth_getTransactionCount", [account.address, "pending"], timeout=5), 16)
            raw = account.sign_transaction({
                "to": "0x" + "33" * 20, "value": sender.rng.randint(1, 10**6), "nonce": nonce, "chainId": CHAIN_ID,
                "gas": 21_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}).raw_transaction
            sender.attempts += 1
            tx_hash = rpc(node.url, "eth_sendRawTransaction", ["0x" + bytes(raw).hex()], timeout=5)
            sender.acked[tx_hash] = nonce
            nonce += 1
            if sender.rng.random() < 0.2:  # now and then a wallet waits for its receipt
                deadline = time.monotonic() + 5
                while rpc(node.url, "eth_getTransactionReceipt", [tx_hash], timeout=5) is None:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
        except (OSError, http.client.HTTPException, RuntimeError, ValueError) as exc:
            # The node is down (or was killed mid-answer) or refused the send (a
            # nonce it no longer expects): ask it again, as a wallet does.
            sender.errors.append(type(exc).__name__)
            nonce = None
            time.sleep(0.1)


def _killer(node: ServedNode, stop: threading.Event, rng: random.Random, kills: list[float],
            failures: list[str]) -> None:
    started = time.monotonic()
    while not stop.wait(rng.uniform(3.0, 9.0)):
        node.kill(signal.SIGKILL)
        kills.append(time.monotonic() - started)
        try:
            node.start()
        except RuntimeError as exc:  # reported by the test itself
            failures.append(f"restart after kill {len(kills)} failed: {exc}")
            stop.set()


def _fates(node: ServedNode, hashes: list[str]) -> dict[str, tuple[str, Any]]:
    """Each hash's receipt, in batches: mined, dropped (with the node's reason) or unknown."""
    fates: dict[str, tuple[str, Any]] = {}
    for start in range(0, len(hashes), 200):
        chunk = hashes[start:start + 200]
        body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionReceipt", "params": [h]}
                           for i, h in enumerate(chunk)]).encode()
        request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answers = {a["id"]: a for a in json.loads(response.read())}
        for i, tx_hash in enumerate(chunk):
            answer = answers[i]
            if "error" in answer:
                message = answer["error"]["message"]
                fates[tx_hash] = ("dropped", message) if "dropped" in message else ("error", message)
            else:
                fates[tx_hash] = ("mined", answer["result"]) if answer["result"] else ("unknown", None)
    return fates


def test_acknowledged_transactions_survive_kill_9(tmp_path: Any) -> None:
    node = ServedNode(tmp_path / "home", accounts=SENDERS).start()
    rng = random.Random(SEED)
    senders = [Sender(key, random.Random(rng.random())) for key in node.keys[:SENDERS]]
    stop = threading.Event()
    kills: list[float] = []
    failures: list[str] = []
    threads = [threading.Thread(target=_send_loop, args=(s, node, stop), daemon=True) for s in senders]
    threads.append(threading.Thread(target=_killer, args=(node, stop, random.Random(rng.random()), kills, failures),
                                   daemon=True))
    try:
        for thread in threads:
            thread.start()
        time.sleep(SOAK_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures[0]
        assert kills, "the node was never killed"
        node.kill(signal.SIGKILL)  # and once more after the last send
        node.start()
        wait_for_rpc(node.url)

        hashes = [h for sender in senders for h in sender.acked]
        fates = _fates(node, hashes)
        deadline = time.monotonic() + SETTLE_S
        while any(f == "unknown" for f, _ in fates.values()) and time.monotonic() < deadline:
            time.sleep(0.5)  # the restarted writer may still be mining what it recovered
            fates.update(_fates(node, [h for h, (f, _) in fates.items() if f == "unknown"]))
        acked = sum(len(s.acked) for s in senders)
        lost = [h for h, (fate, _) in fates.items() if fate not in ("mined", "dropped")]
        summary = (f"{acked} acknowledged in {SOAK_SECONDS:.0f}s with {len(kills)} kills at "
                   f"{[round(k, 1) for k in kills]}: "
                   f"{sum(f == 'mined' for f, _ in fates.values())} mined, "
                   f"{sum(f == 'dropped' for f, _ in fates.values())} dropped")
        print(summary)
        assert acked > 50, summary
        assert not lost, f"{len(lost)} acknowledged transactions neither mined nor reported dropped ({summary}), e.g. " \
                         f"{[(h, fates[h]) for h in lost[:3]]}"

        for sender in senders:
            final = int(rpc(node.url, "eth_getTransactionCount", [sender.address, "latest"]), 16)
            mined = [(fates[h][1], n) for h, n in sender.acked.items() if fates[h][0] == "mined"]
            nonces = [n for _, n in mined]
            assert len(nonces) == len(set(nonces)), f"{sender.address}: two mined transactions share a nonce"
            assert all(n < final for n in nonces), f"{sender.address}: a mined nonce at or above {final}"
            assert all(r["from"].lower() == sender.address.lower() for r, _ in mined)
            assert final <= sender.attempts
    finally:
        stop.set()
        node.kill(signal.SIGKILL)
