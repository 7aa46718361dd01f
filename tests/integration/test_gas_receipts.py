"""Gas of the DataMarket hot paths, read from real transaction receipts.

The same scenario runs on the embedded chain and on anvil; both must charge
exactly the same gas (same EVM rules), stay within the budgets of the data
market issue and produce the table kept in the README (written to
test-artifacts/gas-receipts.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from databright.chain import Commitment, DatasetParams
from tests.integration.conftest import Backend

REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "gas-receipts.md"
BUDGETS = {
    "vote (first)": 60_000,
    "vote (second)": 60_000,
    "vote (256 checkpoints)": 60_000,
    "commit_proposal": 50_000,
    "reveal_proposal (1 item)": 175_000,
    "reveal_proposal (1,000 items)": 175_000,
    "withdraw (first)": 60_000,
    "withdraw (later)": 60_000,
}
_measured: dict[str, dict[str, int]] = {}


def _scenario(b: Backend) -> dict[str, int]:
    m, (creator, contributor, evaluator, payer, voter, _) = b.market, b.accounts
    gas: dict[str, int] = {}

    def used(receipt: object) -> int:
        return int(receipt["gasUsed"])  # type: ignore[index]

    params = DatasetParams(metadata_digest=b"\x11" * 32, initial_shares=1_000, evaluator=evaluator.address,
                           proposal_bond=10**16, min_accept_delay=0)
    receipt = b.ledger.transact(creator, m.contract.functions.create_dataset(
        params.metadata_digest, params.initial_shares, params.quorum_bps, params.approval_bps, params.voting_period,
        params.proposal_bond, params.base_reward_per_item, params.max_reward_per_proposal,
        params.evaluation_required, params.training_fee, params.evaluator, params.min_accept_delay,
        params.max_mint_bps, params.min_royalty_bps))
    gas["create_dataset"] = used(receipt)
    dataset = 1
    gas["safeTransferFrom"] = used(m.transfer(creator, voter.address, dataset, 100))
    wide = m.create_dataset(creator, DatasetParams(metadata_digest=b"\x12" * 32, initial_shares=5_000))
    holders = [Account.from_key((7_000 + i).to_bytes(32, "big")) for i in range(50)]
    for h in holders:
        m.transfer(creator, h.address, wide, 100)

    # A fixed salt: the same calldata on both chains (a zero byte in a random digest costs 12 gas less).
    commitments = [Commitment(contributor.address, dataset, bytes([0x22 + i]) * 32, b"\x33" * 32, items,
                              bytes([0x44 + i]) * 32) for i, items in enumerate((1, 1_000))]
    for c in commitments:
        gas["commit_proposal"] = used(m.commit(contributor, c))
    for c in commitments:
        fn = m.contract.functions.reveal_proposal(*c.reveal_args())
        gas[f"reveal_proposal ({c.item_count:,} item{'s' if c.item_count > 1 else ''})"] = used(
            b.ledger.transact(contributor, fn, value=10**16))
    gas["commit + reveal (1 item)"] = gas["commit_proposal"] + gas["reveal_proposal (1 item)"]
    gas["post_evaluation"] = used(m.post_evaluation(evaluator, 1, 25, 40, b"\x44" * 32))  # before any vote
    gas["vote (first)"] = used(m.vote(voter, 1, True))
    gas["vote (second)"] = used(m.vote(voter, 2, False))
    gas["vote (256 checkpoints)"] = _vote_with_history(b)
    m.vote(creator, 1, True)
    gas["finalize (accept)"] = used(m.finalize(creator, 1))
    m.vote(creator, 2, False)
    gas["finalize (reject)"] = used(m.finalize(creator, 2))
    gas["withdraw_refund"] = used(b.ledger.transact(contributor, m.contract.functions.withdraw_refund()))
    lone = m.create_dataset(creator, DatasetParams(metadata_digest=b"\x13" * 32, initial_shares=5_000))
    for target in (lone, wide):  # a dataset's first deposit also initialises its revenue slots
        m.deposit(payer, target, 10**18)
    gas["deposit (1 holder)"] = used(m.deposit(payer, lone, 10**18))
    gas["deposit (51 holders)"] = used(m.deposit(payer, wide, 10**18))
    gas["withdraw (first)"] = used(b.ledger.transact(voter, m.contract.functions.withdraw(dataset)))
    m.deposit(payer, dataset, 10**18)
    gas["withdraw (later)"] = used(b.ledger.transact(voter, m.contract.functions.withdraw(dataset)))
    return gas


def _vote_with_history(b: Backend) -> int:
    """A voter whose balance changed in 256 blocks, the proposal's snapshot in the middle."""
    m, (creator, contributor, _, _, _, voter) = b.market, b.accounts
    dataset = m.create_dataset(creator, DatasetParams(metadata_digest=b"\x14" * 32, initial_shares=5_000))
    proposal = 0
    for i in range(256):
        m.transfer(creator, voter.address, dataset, 1)  # one block each
        if i == 127:
            proposal = m.propose(contributor, dataset, b"\x24" * 32, b"\x33" * 32, 1)
    assert 0 < m.checkpoint_hint(proposal, voter.address) < 255
    return int(m.vote(voter, proposal, True)["gasUsed"])


def test_gas_on_receipts(backend: Backend) -> None:
    gas = _scenario(backend)
    for name, budget in BUDGETS.items():
        assert gas[name] <= budget, f"{name} costs {gas[name]:,} gas, over its budget of {budget:,}"
    assert gas["reveal_proposal (1 item)"] == pytest.approx(gas["reveal_proposal (1,000 items)"], abs=32)
    assert gas["vote (256 checkpoints)"] == pytest.approx(gas["vote (first)"], abs=64)
    assert gas["deposit (1 holder)"] == gas["deposit (51 holders)"]
    _measured[backend.name] = gas
    if len(_measured) == 2:
        assert _measured["embedded"] == _measured["anvil"], "the embedded chain charges different gas than anvil"
        REPORT.parent.mkdir(exist_ok=True)
        lines = ["| operation | gas (receipt) | budget |", "|---|---:|---:|"]
        for name, value in gas.items():
            budget = BUDGETS.get(name)
            lines.append(f"| {name} | {value:,} | {f'{budget:,}' if budget else ''} |")
        REPORT.write_text("\n".join(lines) + "\n")
