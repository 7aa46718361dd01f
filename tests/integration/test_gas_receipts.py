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

from databright.chain import DatasetParams
from tests.integration.conftest import Backend

REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "gas-receipts.md"
BUDGETS = {
    "vote (first)": 60_000,
    "vote (second)": 60_000,
    "propose (1 item)": 150_000,
    "propose (1,000 items)": 150_000,
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
                           proposal_bond=10**16)
    receipt = b.ledger.transact(creator, m.contract.functions.create_dataset(
        params.metadata_digest, params.initial_shares, params.quorum_bps, params.approval_bps, params.voting_period,
        params.proposal_bond, params.base_reward_per_item, params.max_reward_per_proposal,
        params.evaluation_required, params.training_fee, params.evaluator))
    gas["create_dataset"] = used(receipt)
    dataset = 1
    gas["safeTransferFrom"] = used(m.transfer(creator, voter.address, dataset, 100))
    wide = m.create_dataset(creator, DatasetParams(metadata_digest=b"\x12" * 32, initial_shares=5_000))
    holders = [Account.from_key((7_000 + i).to_bytes(32, "big")) for i in range(50)]
    for h in holders:
        m.transfer(creator, h.address, wide, 100)

    def propose(items: int) -> int:
        fn = m.contract.functions.propose(dataset, b"\x22" * 32, b"\x33" * 32, items)
        return used(b.ledger.transact(contributor, fn, value=10**16))

    gas["propose (1 item)"] = propose(1)
    gas["propose (1,000 items)"] = propose(1_000)
    gas["vote (first)"] = used(m.vote(voter, 1, True))
    gas["vote (second)"] = used(m.vote(voter, 2, False))
    gas["post_evaluation"] = used(m.post_evaluation(evaluator, 1, 25, 40, b"\x44" * 32))
    m.vote(creator, 1, True)
    gas["finalize (accept)"] = used(m.finalize(creator, 1))
    m.vote(creator, 2, False)
    gas["finalize (reject)"] = used(m.finalize(creator, 2))
    lone = m.create_dataset(creator, DatasetParams(metadata_digest=b"\x13" * 32, initial_shares=5_000))
    for target in (lone, wide):  # a dataset's first deposit also initialises its revenue slots
        m.deposit(payer, target, 10**18)
    gas["deposit (1 holder)"] = used(m.deposit(payer, lone, 10**18))
    gas["deposit (51 holders)"] = used(m.deposit(payer, wide, 10**18))
    gas["withdraw (first)"] = used(b.ledger.transact(voter, m.contract.functions.withdraw(dataset)))
    m.deposit(payer, dataset, 10**18)
    gas["withdraw (later)"] = used(b.ledger.transact(voter, m.contract.functions.withdraw(dataset)))
    return gas


def test_gas_on_receipts(backend: Backend) -> None:
    gas = _scenario(backend)
    for name, budget in BUDGETS.items():
        assert gas[name] <= budget, f"{name} costs {gas[name]:,} gas, over its budget of {budget:,}"
    assert gas["propose (1 item)"] == pytest.approx(gas["propose (1,000 items)"], abs=32)
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
