"""Gas budgets of the DataMarket hot paths, compared with a recorded table.

Costs are in-process estimates of full transaction gas (see
`market_helpers.measure`); they run ~2,800 gas below what real receipts show
for the same calls (~20,700 for a reveal: boa runs every call inside one
transaction, so clearing the commitment written by the commit looks like
clearing a slot set in the same transaction and earns the larger refund), so
the budgets themselves are enforced on receipts by
tests/integration/test_gas_receipts.py (embedded chain and anvil). This test
catches regressions quickly without a node. The recorded
table lives in gas_budget.json; an operation costing more than 2% above its
record fails. Set DATABRIGHT_RECORD_GAS=1 to rewrite the record after an
intended change. A Markdown table is written to test-artifacts/gas.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boa

from market_helpers import BOND, DEFAULTS, ETHER, SALT, commitment, create_dataset, make_account, measure, mine, transfer

RECORD = Path(__file__).resolve().parent / "gas_budget.json"
REPORT = Path(__file__).resolve().parents[3] / "test-artifacts" / "gas.md"
TOLERANCE = 1.02

BUDGETS = {
    "vote (first)": 60_000,
    "vote (second)": 60_000,
    "vote (256 checkpoints)": 60_000,
    "commit_proposal": 50_000,
    "reveal_proposal (1 item)": 175_000,
    "reveal_proposal (1000 items)": 175_000,
    "withdraw (first)": 60_000,
    "withdraw (later)": 60_000,
}


def run_scenario(market: Any) -> dict[str, int]:
    creator, contributor, evaluator, payer = (make_account(n) for n in ("g-creator", "g-contrib", "g-eval", "g-payer"))
    holders = [make_account(f"g-holder-{i}") for i in range(50)]
    gas: dict[str, int] = {}

    args = tuple({**DEFAULTS, "evaluator": evaluator}.values())
    gas["create_dataset"] = measure(market, creator, lambda: market.create_dataset(*args))
    dataset = 1
    wide = create_dataset(market, creator, initial_shares=5000)
    for holder in holders:
        transfer(market, creator, holder, wide, 100)
    voter = holders[0]
    transfer(market, creator, voter, dataset, 100)
    mine()

    manifest = b"\x33" * 32
    roots = {1: b"\x22" * 32, 1000: b"\x23" * 32}
    for items, root in roots.items():
        digest = commitment(contributor, dataset, root, manifest, items, SALT)
        gas["commit_proposal"] = measure(market, contributor, lambda d=digest: market.commit_proposal(d))
    mine()
    for items, root in roots.items():
        gas[f"reveal_proposal ({items} item{'s' if items > 1 else ''})"] = measure(
            market, contributor,
            lambda i=items, r=root: market.reveal_proposal(dataset, r, manifest, i, SALT, value=BOND),
        )
    gas["commit + reveal (1 item)"] = gas["commit_proposal"] + gas["reveal_proposal (1 item)"]
    # Hints are read before measuring: the read would warm the slots.
    hints = [market.checkpoint_hint(pid, voter) for pid in (1, 2)]
    gas["vote (first)"] = measure(market, voter, lambda: market.vote(1, True, hints[0]))
    gas["vote (second)"] = measure(market, voter, lambda: market.vote(2, False, hints[1]))
    gas["vote (256 checkpoints)"] = _vote_with_history(market, creator, contributor, holders[-1])
    gas["post_evaluation"] = _post_evaluation(market, creator, contributor, evaluator)
    with boa.env.prank(creator):
        market.vote(1, True, 0)
        market.vote(2, False, 0)
    gas["finalize (accept)"] = measure(market, payer, lambda: market.finalize(1))
    gas["finalize (reject)"] = measure(market, payer, lambda: market.finalize(2))
    gas["withdraw_refund"] = measure(market, contributor, lambda: market.withdraw_refund())

    narrow = create_dataset(market, creator)
    for ds in (narrow, wide):  # a first deposit per dataset, not measured
        with boa.env.prank(payer):
            market.deposit(ds, value=ETHER)
    gas["deposit (1 holder)"] = measure(market, payer, lambda: market.deposit(narrow, value=ETHER))
    gas["deposit (50 holders)"] = measure(market, payer, lambda: market.deposit(wide, value=ETHER))

    gas["withdraw (first)"] = measure(market, holders[1], lambda: market.withdraw(wide))
    with boa.env.prank(payer):
        market.deposit(wide, value=ETHER)
    gas["withdraw (later)"] = measure(market, holders[1], lambda: market.withdraw(wide))
    gas["safeTransferFrom"] = measure(
        market, holders[2], lambda: market.safeTransferFrom(holders[2], holders[3], wide, 10, b"")
    )
    return gas


def _reveal(market: Any, contributor: str, dataset: int, root: bytes) -> int:
    with boa.env.prank(contributor):
        market.commit_proposal(commitment(contributor, dataset, root, b"\x33" * 32, 1, SALT))
    mine()
    with boa.env.prank(contributor):
        proposal_id: int = market.reveal_proposal(dataset, root, b"\x33" * 32, 1, SALT, value=BOND)
    return proposal_id


def _vote_with_history(market: Any, creator: str, contributor: str, voter: str) -> int:
    """A voter whose balance changed in 256 blocks, the snapshot in the middle."""
    dataset = create_dataset(market, creator)
    proposal_id = 0
    for i in range(256):
        transfer(market, creator, voter, dataset, 1)
        mine()
        if i == 127:
            proposal_id = _reveal(market, contributor, dataset, b"\x24" * 32)
    hint = market.checkpoint_hint(proposal_id, voter)
    assert 0 < hint < 255
    return measure(market, voter, lambda: market.vote(proposal_id, True, hint))


def _post_evaluation(market: Any, creator: str, contributor: str, evaluator: str) -> int:
    dataset = create_dataset(market, creator, evaluation_required=True, evaluator=evaluator)
    mine()
    proposal_id = _reveal(market, contributor, dataset, b"\x25" * 32)
    return measure(market, evaluator, lambda: market.post_evaluation(proposal_id, 25, 40, b"\x44" * 32))


def write_report(gas: dict[str, int], recorded: dict[str, int]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# DataMarket gas (full transaction gas, titanoboa / py-evm prague)",
        "",
        "| operation | gas | recorded | budget |",
        "| --- | ---: | ---: | ---: |",
    ]
    for op, used in gas.items():
        budget = f"{BUDGETS[op]:,}" if op in BUDGETS else ""
        lines.append(f"| {op} | {used:,} | {recorded.get(op, used):,} | {budget} |")
    REPORT.write_text("\n".join(lines) + "\n")


def test_gas() -> None:
    with boa.env.anchor():
        market = boa.load(str(Path(__file__).resolve().parents[3] / "src/databright/chain/contracts/data_market.vy"))
        gas = run_scenario(market)

    if os.environ.get("DATABRIGHT_RECORD_GAS") == "1" or not RECORD.exists():
        RECORD.write_text(json.dumps(gas, indent=2) + "\n")
    recorded: dict[str, int] = json.loads(RECORD.read_text())
    write_report(gas, recorded)

    for op, budget in BUDGETS.items():
        assert gas[op] <= budget, f"{op}: {gas[op]} > budget {budget}"
    # item_count only changes a calldata byte or two.
    assert abs(gas["reveal_proposal (1 item)"] - gas["reveal_proposal (1000 items)"]) <= 32
    # A long balance history costs the voter nothing: the hint is checked
    # with two reads.
    assert abs(gas["vote (256 checkpoints)"] - gas["vote (first)"]) <= 64
    assert gas["deposit (1 holder)"] == gas["deposit (50 holders)"]
    assert set(gas) == set(recorded), "gas_budget.json is out of date"
    regressions = {op: (used, recorded[op]) for op, used in gas.items() if used > recorded[op] * TOLERANCE}
    assert not regressions, f"gas above the recorded table by more than 2%: {regressions}"
