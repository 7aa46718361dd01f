"""Helpers shared by the DataMarket contract tests (titanoboa)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boa
from eth.db.backends.memory import MemoryDB
from eth.db.journal import JournalDB
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_canonical_address

# boa resolves `from snekmate...` imports through sys.path, which holds the
# site-packages directory snekmate is installed in.
CONTRACT = Path(__file__).resolve().parents[3] / "src/databright/chain/contracts/data_market.vy"

ETHER = 10**18
BOND = 10**16
PERIOD = 3600

DEFAULTS: dict[str, Any] = {
    "metadata_digest": b"\x11" * 32,
    "initial_shares": 1000,
    "quorum_bps": 2000,
    "approval_bps": 5000,
    "voting_period": PERIOD,
    "proposal_bond": BOND,
    "base_reward_per_item": 10,
    "max_reward_per_proposal": 10_000,
    "evaluation_required": False,
    "training_fee": 0,
    "evaluator": "0x" + "00" * 20,
    # The rules these tests were written for; test_dilution.py covers the
    # protective defaults of DatasetParams.
    "min_accept_delay": 0,
    "max_mint_bps": 10_000,
    "min_royalty_bps": 0,
}
SALT = b"\x5a" * 32


def make_account(alias: str, balance: int = 100 * ETHER) -> str:
    addr = boa.env.generate_address(alias)
    boa.env.set_balance(addr, balance)
    return addr


def create_dataset(market: Any, sender: str, **overrides: Any) -> int:
    params = {**DEFAULTS, **overrides}
    with boa.env.prank(sender):
        dataset_id: int = market.create_dataset(*params.values())
    return dataset_id


def mine(blocks: int = 1) -> None:
    boa.env.time_travel(blocks=blocks)


def commitment(sender: str, dataset_id: int, root: bytes, manifest: bytes, item_count: int,
               salt: bytes = SALT) -> bytes:
    encoded = abi_encode(
        ["address", "uint256", "bytes32", "bytes32", "uint256", "bytes32"],
        [sender, dataset_id, root, manifest, item_count, salt],
    )
    return keccak(encoded)


_roots = iter(range(1, 2**32))


def fresh_root() -> bytes:
    """A root no earlier proposal used (a root may be open only once)."""
    return keccak(next(_roots).to_bytes(32, "big"))


def commit(market: Any, sender: str, dataset_id: int, item_count: int = 3, root: bytes = b"\x22" * 32,
           manifest: bytes = b"\x33" * 32, salt: bytes = SALT) -> bytes:
    digest = commitment(sender, dataset_id, root, manifest, item_count, salt)
    with boa.env.prank(sender):
        market.commit_proposal(digest)
    return digest


def reveal(market: Any, sender: str, dataset_id: int, item_count: int = 3, root: bytes = b"\x22" * 32,
           manifest: bytes = b"\x33" * 32, value: int | None = None, salt: bytes = SALT) -> int:
    bond = market.get_dataset(dataset_id).proposal_bond if value is None else value
    with boa.env.prank(sender):
        proposal_id: int = market.reveal_proposal(dataset_id, root, manifest, item_count, salt, value=bond)
    return proposal_id


def propose(market: Any, sender: str, dataset_id: int, item_count: int = 3, root: bytes | None = None,
            manifest: bytes = b"\x33" * 32, value: int | None = None, salt: bytes = SALT) -> int:
    """Commit, mine a block, reveal: the two transactions of a proposal."""
    root = fresh_root() if root is None else root
    commit(market, sender, dataset_id, item_count, root, manifest, salt)
    mine()
    return reveal(market, sender, dataset_id, item_count, root, manifest, value, salt)


def vote(market: Any, voter: str, proposal_id: int, support: bool) -> None:
    hint = market.checkpoint_hint(proposal_id, voter)
    with boa.env.prank(voter):
        market.vote(proposal_id, support, hint)


def transfer(market: Any, sender: str, to: str, dataset_id: int, amount: int) -> None:
    with boa.env.prank(sender):
        market.safeTransferFrom(sender, to, dataset_id, amount, b"")


def leaf(item_digest: bytes, label_hash: bytes) -> bytes:
    return keccak(keccak(item_digest + label_hash))


def _node(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves]
    while len(levels[-1]) > 1:
        level = levels[-1]
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
    return levels


def merkle_proof(levels: list[list[bytes]], index: int) -> list[bytes]:
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


# boa runs calls as bare messages: no intrinsic gas, no refund cap, and an
# access list that is never cleared. `measure` clears it first (warming only
# what a real transaction warms: sender, contract, coinbase), then adds the
# intrinsic cost and applies the refund cap and the EIP-7623 calldata floor,
# so the result is what a receipt's gasUsed would say.
TX_GAS = 21_000


def measure(contract: Any, sender: str, call: Callable[[], Any]) -> int:
    state = boa.env.evm.vm.state
    db = state._account_db
    # A fresh access journal for this call only; the old one holds the
    # checkpoints of any open boa.env.anchor() and is put back afterwards.
    saved = db._journal_accessed_state
    db._journal_accessed_state = JournalDB(MemoryDB())
    try:
        for addr in (sender, contract.address, state.coinbase):
            state.mark_address_warm(to_canonical_address(addr))
        with boa.env.prank(sender):
            call()
    finally:
        db._journal_accessed_state = saved
    computation = contract._computation
    assert not computation.is_error
    data = bytes(computation.msg.data)
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    used = TX_GAS + 4 * zeros + 16 * nonzeros + computation.get_gas_used()
    used -= min(computation.get_gas_refund(), used // 5)
    floor = TX_GAS + 10 * (zeros + 4 * nonzeros)
    return max(used, floor)
