"""The DataMarket protocol through the typed client, on the embedded chain and on anvil.

The same tests run against both ledgers, so the embedded node is held to the
behaviour of a real Ethereum node: receipts, events, revert reasons, time.
"""

from __future__ import annotations

import pytest

from databright.chain import Commitment, DatasetParams, ProposalStatus
from databright.errors import TransactionError
from databright.storage import Manifest, ManifestItem, cid_of, digest_of_cid, label_hash
from tests.integration.conftest import Backend

BOND = 10**16


def _params(**overrides: object) -> DatasetParams:
    base = dict(
        metadata_digest=b"\x11" * 32,
        initial_shares=1_000,
        quorum_bps=2_000,
        approval_bps=5_000,
        voting_period=3_600,
        proposal_bond=BOND,
        base_reward_per_item=10,
        max_reward_per_proposal=500,
    )
    base.update(overrides)
    return DatasetParams(**base)  # type: ignore[arg-type]


def _manifest(n: int, salt: str = "") -> Manifest:
    return Manifest([ManifestItem(cid_of(f"item {salt}{i}".encode()), str(i % 3)) for i in range(n)])


def _propose(b: Backend, who: int, dataset_id: int, manifest: Manifest) -> int:
    return b.market.propose(b.accounts[who], dataset_id, manifest.root, digest_of_cid(manifest.cid), len(manifest))


def test_full_round_accepts_mints_and_proves_items(backend: Backend) -> None:
    b, m = backend, backend.market
    dataset_id = m.create_dataset(b.accounts[0], _params())
    manifest = _manifest(7)
    proposal_id = _propose(b, 1, dataset_id, manifest)
    m.vote(b.accounts[0], proposal_id, True)
    m.finalize(b.accounts[2], proposal_id)

    p = m.proposal(proposal_id)
    assert p.status == ProposalStatus.ACCEPTED
    assert p.shares_minted == 70
    assert m.balance_of(b.accounts[1].address, dataset_id) == 70
    assert m.dataset(dataset_id).entry_count == 1
    entry = m.entry(dataset_id, 0)
    assert entry.root == manifest.root and entry.item_count == 7
    for i in (0, 3, 6):
        item = manifest[i]
        assert m.verify_item(dataset_id, 0, digest_of_cid(item.cid), label_hash(item.label), manifest.proof(i))
    wrong = manifest[1]
    assert not m.verify_item(dataset_id, 0, digest_of_cid(wrong.cid), label_hash("not its label"), manifest.proof(1))


def test_rejected_bond_becomes_revenue_of_holders(backend: Backend) -> None:
    b, m = backend, backend.market
    dataset_id = m.create_dataset(b.accounts[0], _params())
    proposal_id = _propose(b, 1, dataset_id, _manifest(3))
    m.vote(b.accounts[0], proposal_id, False)
    m.finalize(b.accounts[0], proposal_id)
    assert m.proposal(proposal_id).status == ProposalStatus.REJECTED
    assert m.revenue_total(dataset_id) == BOND
    assert m.withdrawable(dataset_id, b.accounts[0].address) == BOND
    before = b.ledger.balance(b.accounts[0].address)
    assert m.withdraw(b.accounts[0], dataset_id) == BOND
    assert b.ledger.balance(b.accounts[0].address) > before
    with pytest.raises(TransactionError, match="datamarket: nothing to withdraw"):
        m.withdraw(b.accounts[0], dataset_id)


def test_votes_use_the_snapshot_and_reject_double_votes(backend: Backend) -> None:
    b, m = backend, backend.market
    dataset_id = m.create_dataset(b.accounts[0], _params(initial_shares=1_000))
    m.transfer(b.accounts[0], b.accounts[1].address, dataset_id, 400)
    proposal_id = _propose(b, 2, dataset_id, _manifest(2))
    # shares moved after the snapshot carry no votes with them
    m.transfer(b.accounts[1], b.accounts[3].address, dataset_id, 400)
    assert m.voting_power(proposal_id, b.accounts[1].address) == 400
    assert m.voting_power(proposal_id, b.accounts[3].address) == 0
    m.vote(b.accounts[1], proposal_id, True)
    with pytest.raises(TransactionError, match="datamarket: already voted"):
        m.vote(b.accounts[1], proposal_id, True)
    with pytest.raises(TransactionError, match="datamarket: no voting power"):
        m.vote(b.accounts[3], proposal_id, True)
    assert m.proposal(proposal_id).yes_votes == 400


def test_finalize_waits_for_the_period_then_applies_quorum(backend: Backend) -> None:
    b, m = backend, backend.market
    dataset_id = m.create_dataset(b.accounts[0], _params(quorum_bps=2_000))
    m.transfer(b.accounts[0], b.accounts[1].address, dataset_id, 300)
    proposal_id = _propose(b, 2, dataset_id, _manifest(4))
    m.vote(b.accounts[1], proposal_id, True)  # 30% participation, not a majority
    with pytest.raises(TransactionError, match="datamarket: voting open"):
        m.finalize(b.accounts[0], proposal_id)
    b.advance(3_601)
    with pytest.raises(TransactionError, match="datamarket: voting closed"):
        m.vote(b.accounts[0], proposal_id, False)
    m.finalize(b.accounts[0], proposal_id)
    assert m.proposal(proposal_id).status == ProposalStatus.ACCEPTED
    assert m.balance_of(b.accounts[2].address, dataset_id) == 40


def test_evaluation_sets_and_caps_the_reward(backend: Backend) -> None:
    b, m = backend, backend.market
    evaluator = b.accounts[5]
    dataset_id = m.create_dataset(
        b.accounts[0], _params(evaluation_required=True, evaluator=evaluator.address, max_reward_per_proposal=250)
    )
    proposal_id = _propose(b, 1, dataset_id, _manifest(5))
    with pytest.raises(TransactionError, match="datamarket: awaiting evaluation"):
        m.vote(b.accounts[0], proposal_id, True)  # voting opens with the evaluation
    with pytest.raises(TransactionError, match="datamarket: awaiting evaluation"):
        m.finalize(b.accounts[0], proposal_id)
    with pytest.raises(TransactionError, match="datamarket: not evaluator"):
        m.post_evaluation(b.accounts[1], proposal_id, 120, 999, b"\x22" * 32)
    m.post_evaluation(evaluator, proposal_id, 120, 999, b"\x22" * 32)
    with pytest.raises(TransactionError, match="datamarket: already evaluated"):
        m.post_evaluation(evaluator, proposal_id, 120, 10**6, b"\x22" * 32)
    m.vote(b.accounts[0], proposal_id, True)
    m.finalize(b.accounts[0], proposal_id)
    p = m.proposal(proposal_id)
    assert (p.evaluated, p.value, p.eval_shares, p.shares_minted) == (True, 120, 999, 250)


def test_revenue_is_split_pro_rata_and_survives_transfers(backend: Backend) -> None:
    b, m = backend, backend.market
    dataset_id = m.create_dataset(b.accounts[0], _params(initial_shares=3))
    m.transfer(b.accounts[0], b.accounts[1].address, dataset_id, 1)
    m.deposit(b.accounts[4], dataset_id, 3 * 10**18)
    m.transfer(b.accounts[0], b.accounts[2].address, dataset_id, 2)
    m.deposit(b.accounts[4], dataset_id, 3 * 10**18)
    assert m.withdrawable(dataset_id, b.accounts[0].address) == 2 * 10**18
    assert m.withdrawable(dataset_id, b.accounts[1].address) == 2 * 10**18
    assert m.withdrawable(dataset_id, b.accounts[2].address) == 2 * 10**18
    with pytest.raises(TransactionError, match="datamarket:"):
        m.deposit(b.accounts[4], 99, 1)


def test_wrong_bond_and_unknown_dataset_are_refused(backend: Backend) -> None:
    b, m = backend, backend.market
    dataset_id = m.create_dataset(b.accounts[0], _params())
    manifest = _manifest(2)
    for target in (dataset_id, dataset_id + 1):
        m.commit(b.accounts[1], Commitment(b.accounts[1].address, target, manifest.root,
                                           digest_of_cid(manifest.cid), 2, b"\x01" * 32))
    reveal = m.contract.functions.reveal_proposal
    with pytest.raises(TransactionError, match="datamarket: wrong bond"):
        b.ledger.transact(b.accounts[1], reveal(dataset_id, manifest.root, digest_of_cid(manifest.cid), 2,
                                                b"\x01" * 32), value=BOND - 1)
    with pytest.raises(TransactionError, match="datamarket: unknown dataset"):
        b.ledger.transact(b.accounts[1], reveal(dataset_id + 1, manifest.root, digest_of_cid(manifest.cid), 2,
                                                b"\x01" * 32), value=BOND)
    with pytest.raises(TransactionError, match="datamarket: no commitment"):  # someone else's reveal
        b.ledger.transact(b.accounts[2], reveal(dataset_id, manifest.root, digest_of_cid(manifest.cid), 2,
                                                b"\x01" * 32), value=BOND)
    assert m.proposal_count() == 0


def test_events_rebuild_the_history(backend: Backend) -> None:
    b, m = backend, backend.market
    dataset_id = m.create_dataset(b.accounts[0], _params())
    proposal_id = _propose(b, 1, dataset_id, _manifest(2))
    m.vote(b.accounts[0], proposal_id, True)
    m.finalize(b.accounts[0], proposal_id)
    names = [e.name for e in m.events(0, b.ledger.block_number())]
    for expected in ("DatasetCreated", "ProposalCreated", "VoteCast", "ProposalFinalized", "TransferSingle"):
        assert expected in names
    assert names.index("DatasetCreated") < names.index("ProposalCreated") < names.index("ProposalFinalized")
