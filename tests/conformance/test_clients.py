"""The same client sequence against ``databright node`` and against anvil, step by step.

Each client (ethers v6, viem, foundry's ``cast``, web3.py) runs its whole
sequence once against a fresh node and a fresh anvil set up alike; every step of
the two transcripts is then compared after normalising what legitimately differs
(see ``_harness.VOLATILE_KEYS``). Transcripts are written to
``test-artifacts/conformance/`` for inspection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import _harness as h
from tests.conformance import _web3_client, _cast_client

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def _node_script(name: str) -> Callable[[str, list[str]], dict[str, Any]]:
    return lambda url, keys: h.run_script(name, url, keys)


CLIENTS: dict[str, Callable[[str, list[str]], dict[str, Any]]] = {
    "ethers": _node_script("ethers.mjs"),
    "viem": _node_script("viem.mjs"),
    "cast": _cast_client.run,
    "web3py": _web3_client.run,
}

# The steps each client's transcript holds, in order.
STEPS: dict[str, list[str]] = {
    "ethers": [
        "network", "feeData", "deploy", "legacy", "eip2930", "eip1559", "contractWrite", "reads",
        "estimateGas", "estimateWithAccessList", "createAccessList", "revertString", "revertCustom",
        "revertEstimate", "revertCustomEstimate", "revertOnChain", "logsAll", "logsTopic", "logsRange",
        "logsOr", "logsBeyondHead", "logsEndBeyondHead", "pastState", "contextLatest", "contextPast",
        "rawFilters", "contractOn", "providerOnBlock", "history", "feeHistory", "insufficientFunds",
        "nonceTooLow", "intrinsicGasTooLow", "tipAboveFeeCap", "overBalanceCall", "overBalanceEstimate",
        "unknownMethod", "replacementUnderpriced", "rawMissing",
    ],
    "viem": [
        "chain", "fees", "deploy", "legacy", "eip2930", "eip1559", "writeContract", "reads",
        "estimateWithAccessList", "createAccessList", "revertString", "revertCustom", "revertEstimate",
        "revertOnChain", "logsEvent", "logsArgs", "logsRange", "logsBeyondHead", "pastState",
        "contextLatest", "contextPast", "eventFilter", "blockFilter", "watchContractEvent",
        "watchBlockNumber", "watchPending", "receipts", "block", "feeHistory", "proof",
        "insufficientFunds", "nonceTooLow", "intrinsicGasTooLow", "tipAboveFeeCap", "unknownMethod",
    ],
    "cast": _cast_client.STEPS,
    "web3py": _web3_client.STEPS,
}

def _threw(step: Any) -> dict[str, Any] | None:
    return step.get("threw") if isinstance(step, dict) else None


def _same_rpc_code(ours: Any, theirs: Any) -> list[str]:
    """Both refuse with the same JSON-RPC code; messages (and what clients read into
    them) may differ: ours follow geth's wording."""
    a, b = _threw(ours), _threw(theirs)
    if a is None or b is None:
        return [f"ours {ours} / anvil {theirs}: both must refuse"]
    return [] if a.get("rpcCode") == b.get("rpcCode") else [f"code {a.get('rpcCode')} != anvil {b.get('rpcCode')}"]


def _refusal(step: Any) -> dict[str, Any] | None:
    """The refusal a step recorded: ``{"threw": {...}}`` or a raw ``{"rpcCode": ...}``."""
    threw = _threw(step)
    if threw is None and isinstance(step, dict) and "rpcCode" in step:
        return step
    return threw


def _refused_like_geth(ours: Any, theirs: Any) -> list[str]:
    """anvil answers some impossible gas estimates (an unaffordable value, a gas cap
    below the intrinsic gas) with 21000 and an unaffordable call with -32003; geth
    refuses them all with -32000; we may answer either way but must refuse."""
    a = _refusal(ours)
    if a is None or a.get("rpcCode") not in (-32000, -32003):
        return [f"ours {ours}: must refuse with -32000/-32003 like geth"]
    return []


def _anvil_or_geth_error(ours: Any, theirs: Any) -> list[str]:
    """A range ending past the head: anvil answers up to the head, geth refuses."""
    a = _refusal(ours)
    if a is not None and a.get("rpcCode") in (-32000, -32602):
        return []
    return list(h.differences(ours, theirs))


def _mined_or_refused_like_geth(ours: Any, theirs: Any) -> list[str]:
    """A high-s signature: anvil mines it; geth refuses it (EIP-2), as we may."""
    a = _refusal(ours)
    if a is not None and a.get("rpcCode") in (-32000, -32602):
        return []
    return list(h.differences(ours, theirs))


def _call_context(ours: Any, theirs: Any) -> list[str]:
    """``block.basefee`` in a call without fee fields: anvil reads the block's, geth
    reads 0 (it prices such calls at nothing); everything else must match."""
    if isinstance(ours, dict) and ours.get("basefeeIsBlock") is False and ours.get("basefee") in ("0", 0, False):
        ours = {**ours, "basefee": theirs.get("basefee"), "basefeeIsBlock": theirs.get("basefeeIsBlock")}
    return list(h.differences(ours, theirs))


def _beyond_head(ours: Any, theirs: Any) -> list[str]:
    """A range starting after the head is an error on geth (-32000) and anvil (-32602)."""
    a = _threw(ours)
    if _threw(theirs) is None:
        return ["anvil did not refuse"]
    if a is None or a.get("rpcCode") not in (-32000, -32602):
        return [f"ours {ours}: must refuse like geth/anvil"]
    return []


COMPARE: dict[str, Callable[[Any, Any], list[str]]] = {
    "unknownMethod": _same_rpc_code,
    "overBalanceEstimate": _refused_like_geth,
    "estimateBelowIntrinsic": _refused_like_geth,
    "overBalanceCall": _refused_like_geth,
    "callOverBalance": _refused_like_geth,
    "logsEndBeyondHead": _anvil_or_geth_error,
    "highS": _mined_or_refused_like_geth,
    "contextLatest": _call_context,
    "contextPast": _call_context,
    "logsBeyondHead": _beyond_head,
}


# viem asks the node to fill in fees (eth_fillTransaction): geth, and we, fill a
# maximum fee of the tip plus twice the base fee, anvil fills its gas price; so
# viem's fees and the hashes that cover them legitimately differ. What the
# transactions do (gas, logs, state, errors) is still compared.
FEE_KEYS = frozenset({"transactionHash", "effectiveGasPrice", "maxFeePerGas", "gasPrice", "reward",
                      "transactions", "transactionsRoot", "hash", "r", "s", "v", "yParity"})
VOLATILE = {"viem": h.VOLATILE_KEYS | FEE_KEYS}

_cache: dict[str, dict[str, Any]] = {}


def _run_client(client: str, tmp: Path) -> dict[str, Any]:
    pair = h.Pair(tmp)
    try:
        return {name: CLIENTS[client](url, pair.keys) for name, url in pair.urls.items()}
    finally:
        pair.close()


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], dict[str, Any]]]:
    """All clients' transcripts, run side by side on first use (they mostly wait on
    their nodes, so this saves wall time, not CPU)."""
    def get(client: str) -> dict[str, Any]:
        if not _cache:
            with ThreadPoolExecutor(max_workers=len(CLIENTS)) as pool:
                futures = {c: pool.submit(_run_client, c, tmp_path_factory.mktemp(c)) for c in CLIENTS}
                for name, future in futures.items():
                    _cache[name] = future.result()
                    h.write_transcripts(name, _cache[name])
        return _cache[client]

    yield get
    _cache.clear()


def _cases() -> Iterator[Any]:
    for client, steps in STEPS.items():
        for step in steps:
            yield pytest.param(client, step, id=f"{client}-{step}")


@pytest.mark.parametrize(("client", "step"), list(_cases()))
def test_step_matches_anvil(transcripts: Callable[[str], dict[str, Any]], client: str, step: str) -> None:
    both = transcripts(client)
    volatile = VOLATILE.get(client, h.VOLATILE_KEYS)
    ours, theirs = (h.normalise(both[name].get(step, "<missing step>"), None, volatile)
                    for name in ("databright", "anvil"))
    assert theirs != "<missing step>", f"the {client} sequence has no step {step}"
    compare = COMPARE.get(step)
    problems = compare(ours, theirs) if compare else list(h.differences(ours, theirs))
    assert not problems, f"{client} {step} differs from anvil:\n" + "\n".join(problems)


def test_steps_are_listed(transcripts: Callable[[str], dict[str, Any]]) -> None:
    """Every step a client records is compared (no step escapes the list)."""
    for client in STEPS:
        recorded = list(transcripts(client)["anvil"])
        assert recorded == STEPS[client], client


def test_normalise_keeps_what_must_match() -> None:
    """Only times, header hashes and the client name are ignored."""
    a = {"gasUsed": "0x5208", "timestamp": "0x1", "blockHash": "0xaa", "hash": "0xBB"}
    b = {"gasUsed": "0x5209", "timestamp": "0x2", "blockHash": "0xcc", "hash": "0xbb"}
    assert list(h.differences(h.normalise(a), h.normalise(b))) == [
        '.gasUsed: ours "0x5208" != anvil "0x5209"']
    assert Path(h.HERE / "Probe.sol").exists()
