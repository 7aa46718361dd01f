# pragma version ~=0.4.3
"""
@title DataMarket
@custom:contract-name data_market
@license Apache-2.0
@notice Datasets grown by proposals and owned by their contributors.
        Each dataset is an ERC-1155 token type (token id = dataset id).
        A contributor commits to a batch of items (a hash binding their
        address, the Merkle root, the manifest digest and the item count),
        then reveals it with a bond at least one block later; shareholders
        vote with their balance at the block before the reveal; accepted
        batches become immutable registry entries and mint shares to the
        contributor. Payments to a dataset are split pro rata among its
        shareholders with O(1) pull accounting; refunded bonds are pulled
        too. docs/protocol.md is the reference.
@dev Hot state is packed by hand because Vyper does not pack struct
     members; the public getters return unpacked structs.
     - proposal core word: dataset_id (0..63) | snapshot_block (64..127)
       | deadline (128..191) | item_count (192..223) | status (224..231)
       | evaluated (232) | evaluation required (233)
       | evaluator epoch (240..255)
     - proposal owner word: contributor (0..159) | bond (160..255)
     - proposal tally word: live flag (255) | yes (128..254) | no (0..127);
       the live flag keeps the word non-zero so a first vote never pays
       for a zero-to-non-zero store
     - dataset params word: proposal_bond (0..95) | voting_period (96..127)
       | quorum_bps (128..143) | approval_bps (144..159)
       | evaluation_required (160) | min_accept_delay (161..192)
       | max_mint_bps (193..208) | min_royalty_bps (209..224)
       | evaluator epochs (225..240)
     - evaluator epoch word: evaluator (0..159) | effective from (160..255)
     - checkpoint word: block number (192..255) | value (0..191)
     - account word: checkpoint count (192..255) | withdrawn wei (0..191);
       written when the holder first receives shares, so a first withdraw
       updates a non-zero word
     Supply checkpoints live under the zero address, which can never hold
     shares. Every balance change (mint, transfer) goes through `_mint` or
     `_move`, which update checkpoints and revenue corrections before the
     module moves the balance and calls the receiver hook.
"""


from snekmate.auth import ownable
from snekmate.tokens import erc1155
from snekmate.tokens.interfaces import IERC1155
from snekmate.utils import merkle_proof_verification as merkle

from . import IDataMarket


implements: IDataMarket


initializes: ownable
initializes: erc1155[ownable := ownable]


exports: (
    erc1155.balanceOf,
    erc1155.balanceOfBatch,
    erc1155.setApprovalForAll,
    erc1155.isApprovedForAll,
    erc1155.uri,
    erc1155.supportsInterface,
    erc1155.total_supply,
)


_BPS: constant(uint256) = 10_000
# Revenue accounting is modular: revenue per share, corrections and the
# magnified amounts of holders wrap around 2**256, and only differences are
# ever read. The true value of every difference read (what a holder can
# still withdraw, times _MAGNITUDE) is below _MAX_HELD * _MAGNITUDE < 2**160,
# so it comes out exact whatever the lifetime revenue. The remainder of each
# division is carried, so the magnitude costs no precision.
_MAGNITUDE: constant(uint256) = 2**64
_MAX_SUPPLY: constant(uint256) = 2**94 - 1
_MAX_HELD: constant(uint256) = 2**96 - 1
_MAX_ITEMS: constant(uint256) = 2**32
_MAX_VOTING_PERIOD: constant(uint256) = 2**32
_MAX_BOND: constant(uint256) = 2**96 - 1
_MAX_PROOF: constant(uint256) = 64
_BATCH_SIZE: constant(uint256) = 128
_SEARCH_STEPS: constant(uint256) = 64
# A change of evaluator made while other holders own shares waits this long,
# so shareholders see who will judge proposals before it happens.
EVALUATOR_DELAY: public(constant(uint256)) = 2 * 86_400

_MASK16: constant(uint256) = 2**16 - 1
_MASK32: constant(uint256) = 2**32 - 1
_MASK64: constant(uint256) = 2**64 - 1
_MASK96: constant(uint256) = 2**96 - 1
_MASK127: constant(uint256) = 2**127 - 1
_MASK128: constant(uint256) = 2**128 - 1
_MASK160: constant(uint256) = 2**160 - 1
_MASK192: constant(uint256) = 2**192 - 1
_TALLY_LIVE: constant(uint256) = 2**255
_CHECKPOINT_ONE: constant(uint256) = 2**192
_EVALUATED: constant(uint256) = 2**232
_EVAL_REQUIRED: constant(uint256) = 2**233
_EPOCH_ONE: constant(uint256) = 2**225

STATUS_OPEN: constant(uint8) = 0
STATUS_ACCEPTED: constant(uint8) = 1
STATUS_REJECTED: constant(uint8) = 2
KIND_PAYMENT: constant(uint8) = 0
KIND_FORFEITED_BOND: constant(uint8) = 1
NO_ENTRY: constant(uint256) = max_value(uint256)


struct Dataset:
    creator: address
    metadata_digest: bytes32
    quorum_bps: uint256
    approval_bps: uint256
    voting_period: uint256
    proposal_bond: uint256
    base_reward_per_item: uint256
    max_reward_per_proposal: uint256
    evaluation_required: bool
    training_fee: uint256
    evaluator: address
    entry_count: uint256
    created_block: uint256
    min_accept_delay: uint256
    max_mint_bps: uint256
    min_royalty_bps: uint256
    next_evaluator: address
    next_evaluator_at: uint256


struct Proposal:
    dataset_id: uint256
    contributor: address
    bond: uint256
    root: bytes32
    manifest_digest: bytes32
    item_count: uint256
    snapshot_block: uint256
    deadline: uint256
    yes_votes: uint256
    no_votes: uint256
    status: uint8
    evaluated: bool
    value: int256
    eval_shares: uint256
    report_digest: bytes32
    shares_minted: uint256
    evaluator: address
    evaluation_required: bool


struct Entry:
    proposal_id: uint256
    contributor: address
    root: bytes32
    manifest_digest: bytes32
    item_count: uint256
    shares_minted: uint256
    block_number: uint256


struct _DatasetInfo:
    creator: address
    metadata_digest: bytes32
    base_reward_per_item: uint256
    max_reward_per_proposal: uint256
    training_fee: uint256
    created_block: uint256


struct _Evaluation:
    value: int256
    shares: uint256
    report_digest: bytes32


# dataset count (0..127) | proposal count (128..255): one word, so the
# first proposal never pays for a zero-to-non-zero store
_counts: uint256
_params: HashMap[uint256, uint256]
_info: HashMap[uint256, _DatasetInfo]
# dataset id => epoch => evaluator | effective from
_evaluators: HashMap[uint256, HashMap[uint256, uint256]]
_entry_count: HashMap[uint256, uint256]
# dataset id => index => proposal id (0..63) | block number (64..127)
_entries: HashMap[uint256, HashMap[uint256, uint256]]

# commitment => block number it was made in
_commits: HashMap[bytes32, uint256]
# dataset id => root => the open or accepted proposal holding it
_root_proposal: HashMap[uint256, HashMap[bytes32, uint256]]
_core: HashMap[uint256, uint256]
_owner: HashMap[uint256, uint256]
_root: HashMap[uint256, bytes32]
_manifest: HashMap[uint256, bytes32]
_tally: HashMap[uint256, uint256]
_evaluation: HashMap[uint256, _Evaluation]
_minted: HashMap[uint256, uint256]
_voted: HashMap[uint256, HashMap[address, bool]]
# account => bonds refunded to it, waiting to be pulled
_refunds: HashMap[address, uint256]

# holder => dataset id => checkpoint count | withdrawn
_account: HashMap[address, HashMap[uint256, uint256]]
# holder => dataset id => index => block | value
_checkpoints: HashMap[address, HashMap[uint256, HashMap[uint256, uint256]]]

# magnified cumulative revenue per share, modulo 2**256
_per_share: HashMap[uint256, uint256]
# magnified correction per holder, modulo 2**256
_correction: HashMap[uint256, HashMap[address, uint256]]
# carried magnified remainder (128..255) | lifetime revenue in wei (0..127)
_revenue: HashMap[uint256, uint256]
# revenue not yet withdrawn, in wei
_held: HashMap[uint256, uint256]
# dataset id => start of the current minting window (192..255) | shares
# minted by proposals in it (0..191)
_mint_window: HashMap[uint256, uint256]


event DatasetCreated:
    dataset_id: indexed(uint256)
    creator: indexed(address)
    metadata_digest: bytes32
    initial_shares: uint256
    quorum_bps: uint256
    approval_bps: uint256
    voting_period: uint256
    proposal_bond: uint256
    base_reward_per_item: uint256
    max_reward_per_proposal: uint256
    evaluation_required: bool
    training_fee: uint256
    evaluator: address
    min_accept_delay: uint256
    max_mint_bps: uint256
    min_royalty_bps: uint256


event EvaluatorChanged:
    dataset_id: indexed(uint256)
    evaluator: indexed(address)
    changed_at: uint256
    effective_at: uint256


event ProposalCommitted:
    commitment: indexed(bytes32)
    committer: indexed(address)


event ProposalCreated:
    proposal_id: indexed(uint256)
    dataset_id: indexed(uint256)
    contributor: indexed(address)
    root: bytes32
    manifest_digest: bytes32
    item_count: uint256
    bond: uint256
    snapshot_block: uint256
    deadline: uint256
    evaluator: address


event VoteCast:
    proposal_id: indexed(uint256)
    voter: indexed(address)
    support: bool
    weight: uint256


event EvaluationPosted:
    proposal_id: indexed(uint256)
    evaluator: indexed(address)
    value: int256
    shares: uint256
    report_digest: bytes32


event ProposalFinalized:
    proposal_id: indexed(uint256)
    dataset_id: indexed(uint256)
    accepted: bool
    yes_votes: uint256
    no_votes: uint256
    shares_minted: uint256
    entry_index: uint256
    expired: bool


event RefundCredited:
    account: indexed(address)
    proposal_id: indexed(uint256)
    amount: uint256


event RefundWithdrawn:
    account: indexed(address)
    amount: uint256


event RevenueDeposited:
    dataset_id: indexed(uint256)
    payer: indexed(address)
    amount: uint256
    kind: uint8


event RevenueWithdrawn:
    dataset_id: indexed(uint256)
    holder: indexed(address)
    amount: uint256


@deploy
def __init__():
    """
    @dev The deployer gets snekmate's owner and minter roles, but no
         function that uses them is exported: shares are minted only by
         `create_dataset` and `finalize`.
    """
    ownable.__init__()
    erc1155.__init__("")


@external
@nonreentrant
def create_dataset(
    metadata_digest: bytes32,
    initial_shares: uint256,
    quorum_bps: uint256,
    approval_bps: uint256,
    voting_period: uint256,
    proposal_bond: uint256,
    base_reward_per_item: uint256,
    max_reward_per_proposal: uint256,
    evaluation_required: bool,
    training_fee: uint256,
    evaluator: address,
    min_accept_delay: uint256,
    max_mint_bps: uint256,
    min_royalty_bps: uint256,
) -> uint256:
    """
    @notice Creates a dataset; the caller is its creator and receives
            `initial_shares`.
    @param metadata_digest sha-256 digest of the metadata CID.
    @param initial_shares Shares minted to the creator (> 0).
    @param quorum_bps Participation quorum of the snapshot supply (1..10000).
    @param approval_bps Share of cast votes that must be yes (1..10000).
    @param voting_period Voting period in seconds (> 0).
    @param proposal_bond Exact bond in wei a proposal must carry.
    @param base_reward_per_item Shares per item without an evaluation.
    @param max_reward_per_proposal Cap on shares minted per proposal (> 0).
    @param evaluation_required Whether votes wait for a posted evaluation.
    @param training_fee Fee in wei for training on the dataset.
    @param evaluator Address allowed to post evaluations (may be empty
           unless `evaluation_required`).
    @param min_accept_delay Seconds after a proposal's reveal before it can
           be accepted early (0..voting_period).
    @param max_mint_bps Cap on shares minted by all proposals accepted
           within one voting period, in basis points of the accepted
           proposal's snapshot supply (1..10000).
    @param min_royalty_bps Least prediction royalty, in basis points, a
           model trained on the dataset must pay it (0..10000).
    @return uint256 The new dataset id.
    """
    assert initial_shares > 0 and initial_shares <= _MAX_SUPPLY, "datamarket: bad initial shares"
    assert quorum_bps >= 1 and quorum_bps <= _BPS, "datamarket: bad quorum"
    assert approval_bps >= 1 and approval_bps <= _BPS, "datamarket: bad approval"
    assert voting_period > 0 and voting_period < _MAX_VOTING_PERIOD, "datamarket: bad voting period"
    assert proposal_bond <= _MAX_BOND, "datamarket: bond too large"
    assert max_reward_per_proposal > 0, "datamarket: bad max reward"
    assert not evaluation_required or evaluator != empty(address), "datamarket: evaluator required"
    assert min_accept_delay <= voting_period, "datamarket: bad accept delay"
    assert max_mint_bps >= 1 and max_mint_bps <= _BPS, "datamarket: bad mint cap"
    assert min_royalty_bps <= _BPS, "datamarket: bad royalty"

    counts: uint256 = self._counts
    dataset_id: uint256 = (counts & _MASK128) + 1
    assert dataset_id <= _MASK64, "datamarket: too many datasets"
    self._counts = unsafe_add(counts, 1)
    self._params[dataset_id] = (
        proposal_bond
        | (voting_period << 96)
        | (quorum_bps << 128)
        | (approval_bps << 144)
        | (convert(evaluation_required, uint256) << 160)
        | (min_accept_delay << 161)
        | (max_mint_bps << 193)
        | (min_royalty_bps << 209)
        | _EPOCH_ONE
    )
    self._evaluators[dataset_id][0] = convert(evaluator, uint256) | (block.timestamp << 160)
    self._info[dataset_id] = _DatasetInfo(
        creator=msg.sender,
        metadata_digest=metadata_digest,
        base_reward_per_item=base_reward_per_item,
        max_reward_per_proposal=max_reward_per_proposal,
        training_fee=training_fee,
        created_block=block.number,
    )
    log DatasetCreated(
        dataset_id=dataset_id,
        creator=msg.sender,
        metadata_digest=metadata_digest,
        initial_shares=initial_shares,
        quorum_bps=quorum_bps,
        approval_bps=approval_bps,
        voting_period=voting_period,
        proposal_bond=proposal_bond,
        base_reward_per_item=base_reward_per_item,
        max_reward_per_proposal=max_reward_per_proposal,
        evaluation_required=evaluation_required,
        training_fee=training_fee,
        evaluator=evaluator,
        min_accept_delay=min_accept_delay,
        max_mint_bps=max_mint_bps,
        min_royalty_bps=min_royalty_bps,
    )
    self._mint(msg.sender, dataset_id, initial_shares)
    return dataset_id


@external
def set_evaluator(dataset_id: uint256, evaluator: address):
    """
    @notice Changes the dataset's evaluator. Only the dataset creator. The
            change takes effect at once while the creator holds every
            share, else after `EVALUATOR_DELAY`; a change still pending is
            replaced. Proposals keep the evaluator in effect when they were
            revealed.
    @param dataset_id The dataset id.
    @param evaluator The new evaluator (may be empty unless the dataset
           requires evaluations).
    """
    params: uint256 = self._dataset_params(dataset_id)
    assert msg.sender == self._info[dataset_id].creator, "datamarket: not creator"
    assert (params >> 160) & 1 == 0 or evaluator != empty(address), "datamarket: evaluator required"
    effective: uint256 = block.timestamp
    if erc1155.balanceOf[msg.sender][dataset_id] != erc1155.total_supply[dataset_id]:
        effective += EVALUATOR_DELAY
    epochs: uint256 = (params >> 225) & _MASK16
    word: uint256 = convert(evaluator, uint256) | (effective << 160)
    if self._evaluators[dataset_id][epochs - 1] >> 160 > block.timestamp:
        # Never in effect, so no proposal refers to it.
        self._evaluators[dataset_id][epochs - 1] = word
    else:
        assert epochs < _MASK16, "datamarket: too many evaluator changes"
        self._evaluators[dataset_id][epochs] = word
        self._params[dataset_id] = params + _EPOCH_ONE
    log EvaluatorChanged(dataset_id=dataset_id, evaluator=evaluator, changed_at=block.timestamp, effective_at=effective)


@external
def commit_proposal(commitment: bytes32):
    """
    @notice First step of a proposal: records a commitment to it, to be
            revealed by `reveal_proposal` in a later block. A copier who
            sees the reveal cannot use it: the commitment holds the sender,
            and by the time a copier's own commitment is a block old the
            root is taken.
    @param commitment keccak256(abi.encode(sender, dataset_id, root,
           manifest_digest, item_count, salt)) with a secret random salt.
    """
    assert commitment != empty(bytes32), "datamarket: empty commitment"
    # Anyone may record a commitment, but only its sender can reveal it; the
    # first record stands, so copying a commitment cannot delay a reveal.
    if self._commits[commitment] == 0:
        self._commits[commitment] = block.number
    log ProposalCommitted(commitment=commitment, committer=msg.sender)


@external
@payable
def reveal_proposal(
    dataset_id: uint256, root: bytes32, manifest_digest: bytes32, item_count: uint256, salt: bytes32
) -> uint256:
    """
    @notice Opens a proposal committed in an earlier block. `msg.value`
            must equal the dataset's proposal bond.
    @param dataset_id The dataset id.
    @param root Merkle root of the batch's leaves (non-zero, not held by an
           open or accepted proposal of the dataset).
    @param manifest_digest sha-256 digest of the manifest CID.
    @param item_count Number of items in the batch (1..2**32-1).
    @param salt The secret the commitment was made with.
    @return uint256 The new proposal id.
    """
    params: uint256 = self._dataset_params(dataset_id)
    bond: uint256 = params & _MASK96
    assert msg.value == bond, "datamarket: wrong bond"
    assert item_count > 0 and item_count < _MAX_ITEMS, "datamarket: bad item count"
    assert root != empty(bytes32), "datamarket: empty root"
    commitment: bytes32 = keccak256(abi_encode(msg.sender, dataset_id, root, manifest_digest, item_count, salt))
    committed: uint256 = self._commits[commitment]
    assert committed != 0, "datamarket: no commitment"
    assert committed < block.number, "datamarket: commitment too recent"
    # Its snapshot would be the block before the dataset existed.
    assert self._info[dataset_id].created_block < block.number, "datamarket: dataset too new"
    assert self._root_proposal[dataset_id][root] == 0, "datamarket: root already proposed"
    self._commits[commitment] = 0

    counts: uint256 = self._counts
    proposal_id: uint256 = (counts >> 128) + 1
    self._counts = unsafe_add(counts, 1 << 128)
    epoch: uint256 = self._epoch_in_effect(dataset_id, params)
    snapshot: uint256 = block.number - 1
    deadline: uint256 = block.timestamp + ((params >> 96) & _MASK32)
    self._core[proposal_id] = (
        dataset_id
        | (snapshot << 64)
        | (deadline << 128)
        | (item_count << 192)
        | (((params >> 160) & 1) << 233)
        | (epoch << 240)
    )
    self._owner[proposal_id] = convert(msg.sender, uint256) | (bond << 160)
    self._root[proposal_id] = root
    self._manifest[proposal_id] = manifest_digest
    self._tally[proposal_id] = _TALLY_LIVE
    self._root_proposal[dataset_id][root] = proposal_id
    log ProposalCreated(
        proposal_id=proposal_id,
        dataset_id=dataset_id,
        contributor=msg.sender,
        root=root,
        manifest_digest=manifest_digest,
        item_count=item_count,
        bond=bond,
        snapshot_block=snapshot,
        deadline=deadline,
        evaluator=self._epoch_evaluator(dataset_id, epoch),
    )
    return proposal_id


@external
def vote(proposal_id: uint256, support: bool, hint: uint256):
    """
    @notice Votes on an open proposal with the caller's balance at the
            proposal's snapshot block. One vote per address. Where the
            dataset requires an evaluation, voting opens once it is posted.
    @param proposal_id The proposal id.
    @param support True for yes, False for no.
    @param hint Index of the caller's last balance checkpoint at or before
           the snapshot block (`checkpoint_hint`); checked, so the cost
           does not grow with the caller's history.
    """
    core: uint256 = self._proposal_core(proposal_id)
    assert (core >> 224) & 255 == convert(STATUS_OPEN, uint256), "datamarket: proposal finalized"
    assert block.timestamp <= (core >> 128) & _MASK64, "datamarket: voting closed"
    assert core & _EVAL_REQUIRED == 0 or core & _EVALUATED != 0, "datamarket: awaiting evaluation"
    assert not self._voted[proposal_id][msg.sender], "datamarket: already voted"
    weight: uint256 = self._value_at_hint(msg.sender, core & _MASK64, (core >> 64) & _MASK64, hint)
    assert weight > 0, "datamarket: no voting power"

    self._voted[proposal_id][msg.sender] = True
    # Neither half can overflow: yes + no never exceeds the snapshot
    # supply, which is at most _MAX_SUPPLY.
    if support:
        self._tally[proposal_id] = unsafe_add(self._tally[proposal_id], weight << 128)
    else:
        self._tally[proposal_id] = unsafe_add(self._tally[proposal_id], weight)
    log VoteCast(proposal_id=proposal_id, voter=msg.sender, support=support, weight=weight)


@external
def post_evaluation(proposal_id: uint256, value_: int256, shares: uint256, report_digest: bytes32):
    """
    @notice Posts the evaluation of an open proposal, once, before any vote
            and no later than its deadline. Only the evaluator in effect
            when the proposal was revealed.
    @param proposal_id The proposal id.
    @param value_ The measured value of the proposal (e.g. accuracy gain,
           fixed point as the dataset's policy defines).
    @param shares Shares the policy awards (capped at finalization); 0 for
           a batch whose manifest does not match its root or item count.
    @param report_digest sha-256 digest of the re-runnable report CID.
    """
    core: uint256 = self._proposal_core(proposal_id)
    assert (core >> 224) & 255 == convert(STATUS_OPEN, uint256), "datamarket: proposal finalized"
    assert msg.sender == self._epoch_evaluator(core & _MASK64, core >> 240), "datamarket: not evaluator"
    assert core & _EVALUATED == 0, "datamarket: already evaluated"
    assert block.timestamp <= (core >> 128) & _MASK64, "datamarket: voting closed"
    assert self._tally[proposal_id] == _TALLY_LIVE, "datamarket: votes already cast"
    self._evaluation[proposal_id] = _Evaluation(value=value_, shares=shares, report_digest=report_digest)
    self._core[proposal_id] = core | _EVALUATED
    log EvaluationPosted(
        proposal_id=proposal_id, evaluator=msg.sender, value=value_, shares=shares, report_digest=report_digest
    )


@external
@nonreentrant
def finalize(proposal_id: uint256):
    """
    @notice Decides a proposal by the rule of docs/protocol.md. Accepted:
            appends a registry entry, mints shares to the contributor
            (without a receiver callback, so no contract can block it) and
            credits the bond back. Voted down: the bond becomes dataset
            revenue. Expired (a required evaluation never posted by the
            deadline): rejected, bond credited back. Refunds are pulled
            with `withdraw_refund`.
    @param proposal_id The proposal id.
    """
    core: uint256 = self._proposal_core(proposal_id)
    assert (core >> 224) & 255 == convert(STATUS_OPEN, uint256), "datamarket: proposal finalized"
    dataset_id: uint256 = core & _MASK64
    tally: uint256 = self._tally[proposal_id]
    yes: uint256 = (tally >> 128) & _MASK127
    no: uint256 = tally & _MASK128
    supply: uint256 = self._value_at(empty(address), dataset_id, (core >> 64) & _MASK64)
    params: uint256 = self._params[dataset_id]
    deadline: uint256 = (core >> 128) & _MASK64

    accepted: bool = False
    expired: bool = False
    if core & _EVAL_REQUIRED != 0 and core & _EVALUATED == 0:
        # Nobody could vote on it; the contributor is not at fault.
        assert block.timestamp > deadline, "datamarket: awaiting evaluation"
        expired = True
    else:
        accepted = self._decide(yes, no, supply, params, deadline)

    owner: uint256 = self._owner[proposal_id]
    contributor: address = convert(convert(owner & _MASK160, uint160), address)
    bond: uint256 = owner >> 160
    minted: uint256 = 0
    entry_index: uint256 = NO_ENTRY
    if accepted:
        info: _DatasetInfo = self._info[dataset_id]
        if core & _EVALUATED != 0:
            minted = self._evaluation[proposal_id].shares
        else:
            minted = self._items_reward((core >> 192) & _MASK32, info.base_reward_per_item, info.max_reward_per_proposal)
        minted = min(minted, info.max_reward_per_proposal)
        if yes != supply:  # the cap protects a minority; unanimity leaves none
            minted = min(minted, self._mint_allowance(dataset_id, supply, params))
        minted = min(minted, _MAX_SUPPLY - erc1155.total_supply[dataset_id])
        window: uint256 = self._mint_window[dataset_id]
        self._mint_window[dataset_id] = unsafe_add(window, minted)
        entry_index = self._entry_count[dataset_id]
        self._entries[dataset_id][entry_index] = proposal_id | (block.number << 64)
        self._entry_count[dataset_id] = entry_index + 1
        self._minted[proposal_id] = minted
        self._core[proposal_id] = core | (convert(STATUS_ACCEPTED, uint256) << 224)
    else:
        self._core[proposal_id] = core | (convert(STATUS_REJECTED, uint256) << 224)
        # The root may be proposed again.
        self._root_proposal[dataset_id][self._root[proposal_id]] = 0

    log ProposalFinalized(
        proposal_id=proposal_id,
        dataset_id=dataset_id,
        accepted=accepted,
        yes_votes=yes,
        no_votes=no,
        shares_minted=minted,
        entry_index=entry_index,
        expired=expired,
    )
    if accepted and minted > 0:
        self._mint(contributor, dataset_id, minted)
    if bond == 0:
        return
    if accepted or expired:
        self._refunds[contributor] += bond
        log RefundCredited(account=contributor, proposal_id=proposal_id, amount=bond)
    else:
        self._distribute(dataset_id, contributor, bond, KIND_FORFEITED_BOND)


@external
@payable
@nonreentrant
def deposit(dataset_id: uint256):
    """
    @notice Pays `msg.value` to the dataset's current shareholders, pro
            rata. Any account or contract may pay (training fees,
            prediction royalties).
    @param dataset_id The dataset id.
    """
    assert msg.value > 0, "datamarket: zero deposit"
    self._dataset_params(dataset_id)
    self._distribute(dataset_id, msg.sender, msg.value, KIND_PAYMENT)


@external
@nonreentrant
def withdraw(dataset_id: uint256) -> uint256:
    """
    @notice Sends the caller all revenue of the dataset they can withdraw.
    @param dataset_id The dataset id.
    @return uint256 The amount sent in wei.
    """
    account: uint256 = self._account[msg.sender][dataset_id]
    amount: uint256 = self._withdrawable(dataset_id, msg.sender, account)
    assert amount > 0, "datamarket: nothing to withdraw"
    # Lifetime withdrawals of one holder stay far below 2**192 wei.
    self._account[msg.sender][dataset_id] = unsafe_add(account, amount)
    self._held[dataset_id] = unsafe_sub(self._held[dataset_id], amount)
    log RevenueWithdrawn(dataset_id=dataset_id, holder=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@nonreentrant
def withdraw_refund() -> uint256:
    """
    @notice Sends the caller every bond refunded to them so far.
    @return uint256 The amount sent in wei.
    """
    amount: uint256 = self._refunds[msg.sender]
    assert amount > 0, "datamarket: nothing to refund"
    self._refunds[msg.sender] = 0
    log RefundWithdrawn(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@nonreentrant
def safeTransferFrom(owner: address, to: address, id: uint256, amount: uint256, data: Bytes[1_024]):
    """
    @notice ERC-1155 transfer of `amount` shares of dataset `id`, keeping
            voting checkpoints and revenue corrections in step.
    @param owner The current holder.
    @param to The receiver (a contract must accept ERC-1155 tokens).
    @param id The dataset id.
    @param amount The number of shares.
    @param data Data passed on to the receiver hook.
    """
    assert owner == msg.sender or erc1155.isApprovedForAll[owner][msg.sender], "datamarket: not owner or approved"
    assert to != empty(address), "datamarket: transfer to the zero address"
    self._move(owner, to, id, amount)
    erc1155._safe_transfer_from(owner, to, id, amount, data)


@external
@nonreentrant
def safeBatchTransferFrom(
    owner: address,
    to: address,
    ids: DynArray[uint256, _BATCH_SIZE],
    amounts: DynArray[uint256, _BATCH_SIZE],
    data: Bytes[1_024],
):
    """
    @notice Batched `safeTransferFrom`.
    @param owner The current holder.
    @param to The receiver (a contract must accept ERC-1155 tokens).
    @param ids The dataset ids.
    @param amounts The numbers of shares, one per id.
    @param data Data passed on to the receiver hook.
    """
    assert owner == msg.sender or erc1155.isApprovedForAll[owner][msg.sender], "datamarket: not owner or approved"
    assert to != empty(address), "datamarket: transfer to the zero address"
    assert len(ids) == len(amounts), "datamarket: ids and amounts length mismatch"
    for i: uint256 in range(len(ids), bound=_BATCH_SIZE):
        self._move(owner, to, ids[i], amounts[i])
    erc1155._safe_batch_transfer_from(owner, to, ids, amounts, data)


@external
@view
def dataset_count() -> uint256:
    """
    @notice Number of datasets; ids run from 1 to this number.
    @return uint256 The dataset count.
    """
    return self._counts & _MASK128


@external
@view
def get_dataset(dataset_id: uint256) -> Dataset:
    """
    @notice A dataset's parameters.
    @param dataset_id The dataset id.
    @return Dataset The dataset.
    """
    params: uint256 = self._dataset_params(dataset_id)
    info: _DatasetInfo = self._info[dataset_id]
    epochs: uint256 = (params >> 225) & _MASK16
    latest: uint256 = self._evaluators[dataset_id][epochs - 1]
    current: uint256 = latest
    next_evaluator: address = empty(address)
    next_at: uint256 = 0
    if latest >> 160 > block.timestamp:
        current = self._evaluators[dataset_id][epochs - 2]
        next_evaluator = convert(convert(latest & _MASK160, uint160), address)
        next_at = latest >> 160
    return Dataset(
        creator=info.creator,
        metadata_digest=info.metadata_digest,
        quorum_bps=(params >> 128) & _MASK16,
        approval_bps=(params >> 144) & _MASK16,
        voting_period=(params >> 96) & _MASK32,
        proposal_bond=params & _MASK96,
        base_reward_per_item=info.base_reward_per_item,
        max_reward_per_proposal=info.max_reward_per_proposal,
        evaluation_required=(params >> 160) & 1 == 1,
        training_fee=info.training_fee,
        evaluator=convert(convert(current & _MASK160, uint160), address),
        entry_count=self._entry_count[dataset_id],
        created_block=info.created_block,
        min_accept_delay=(params >> 161) & _MASK32,
        max_mint_bps=(params >> 193) & _MASK16,
        min_royalty_bps=(params >> 209) & _MASK16,
        next_evaluator=next_evaluator,
        next_evaluator_at=next_at,
    )


@external
@view
def evaluator(dataset_id: uint256) -> address:
    """
    @notice The evaluator in effect now: new proposals are judged by it.
    @param dataset_id The dataset id.
    @return address The evaluator (empty when the dataset has none).
    """
    params: uint256 = self._dataset_params(dataset_id)
    return self._epoch_evaluator(dataset_id, self._epoch_in_effect(dataset_id, params))


@external
@view
def training_fee(dataset_id: uint256) -> uint256:
    """
    @notice The fee in wei for training on the dataset.
    @param dataset_id The dataset id.
    @return uint256 The fee.
    """
    self._dataset_params(dataset_id)
    return self._info[dataset_id].training_fee


@external
@view
def min_royalty_bps(dataset_id: uint256) -> uint256:
    """
    @notice The least prediction royalty, in basis points, that a model
            trained on the dataset must pay it.
    @param dataset_id The dataset id.
    @return uint256 The royalty floor (0..10000).
    """
    return (self._dataset_params(dataset_id) >> 209) & _MASK16


@external
@view
def proposal_count() -> uint256:
    """
    @notice Number of proposals over all datasets; ids run from 1.
    @return uint256 The proposal count.
    """
    return self._counts >> 128


@external
@view
def get_proposal(proposal_id: uint256) -> Proposal:
    """
    @notice A proposal with its tallies, status and evaluation.
    @param proposal_id The proposal id.
    @return Proposal The proposal (status 0 open, 1 accepted, 2 rejected).
    """
    core: uint256 = self._proposal_core(proposal_id)
    owner: uint256 = self._owner[proposal_id]
    tally: uint256 = self._tally[proposal_id]
    evaluation: _Evaluation = self._evaluation[proposal_id]
    return Proposal(
        dataset_id=core & _MASK64,
        contributor=convert(convert(owner & _MASK160, uint160), address),
        bond=owner >> 160,
        root=self._root[proposal_id],
        manifest_digest=self._manifest[proposal_id],
        item_count=(core >> 192) & _MASK32,
        snapshot_block=(core >> 64) & _MASK64,
        deadline=(core >> 128) & _MASK64,
        yes_votes=(tally >> 128) & _MASK127,
        no_votes=tally & _MASK128,
        status=convert((core >> 224) & 255, uint8),
        evaluated=core & _EVALUATED != 0,
        value=evaluation.value,
        eval_shares=evaluation.shares,
        report_digest=evaluation.report_digest,
        shares_minted=self._minted[proposal_id],
        evaluator=self._epoch_evaluator(core & _MASK64, core >> 240),
        evaluation_required=core & _EVAL_REQUIRED != 0,
    )


@external
@view
def has_voted(proposal_id: uint256, voter: address) -> bool:
    """
    @notice Whether `voter` has voted on the proposal.
    @param proposal_id The proposal id.
    @param voter The address.
    @return bool True once voted.
    """
    return self._voted[proposal_id][voter]


@external
@view
def voting_power(proposal_id: uint256, voter: address) -> uint256:
    """
    @notice `voter`'s share balance at the proposal's snapshot block.
    @param proposal_id The proposal id.
    @param voter The address.
    @return uint256 The voting weight.
    """
    core: uint256 = self._proposal_core(proposal_id)
    return self._value_at(voter, core & _MASK64, (core >> 64) & _MASK64)


@external
@view
def checkpoint_hint(proposal_id: uint256, voter: address) -> uint256:
    """
    @notice The `hint` that `vote` takes: the index of `voter`'s last
            balance checkpoint at or before the proposal's snapshot block
            (0 when there is none).
    @param proposal_id The proposal id.
    @param voter The address.
    @return uint256 The checkpoint index.
    """
    core: uint256 = self._proposal_core(proposal_id)
    after: uint256 = self._checkpoints_until(voter, core & _MASK64, (core >> 64) & _MASK64)
    if after == 0:
        return 0
    return after - 1


@external
@view
def snapshot_supply(proposal_id: uint256) -> uint256:
    """
    @notice The dataset's share supply at the proposal's snapshot block.
    @param proposal_id The proposal id.
    @return uint256 The snapshot supply.
    """
    core: uint256 = self._proposal_core(proposal_id)
    return self._value_at(empty(address), core & _MASK64, (core >> 64) & _MASK64)


@external
@view
def entry_count(dataset_id: uint256) -> uint256:
    """
    @notice Number of registry entries (accepted proposals) of a dataset.
    @param dataset_id The dataset id.
    @return uint256 The entry count.
    """
    self._dataset_params(dataset_id)
    return self._entry_count[dataset_id]


@external
@view
def get_entry(dataset_id: uint256, index: uint256) -> Entry:
    """
    @notice A registry entry of a dataset.
    @param dataset_id The dataset id.
    @param index 0-based entry index.
    @return Entry The entry.
    """
    proposal_id: uint256 = self._entry_proposal(dataset_id, index)
    owner: uint256 = self._owner[proposal_id]
    return Entry(
        proposal_id=proposal_id,
        contributor=convert(convert(owner & _MASK160, uint160), address),
        root=self._root[proposal_id],
        manifest_digest=self._manifest[proposal_id],
        item_count=(self._core[proposal_id] >> 192) & _MASK32,
        shares_minted=self._minted[proposal_id],
        block_number=self._entries[dataset_id][index] >> 64,
    )


@external
@view
def verify_item(
    dataset_id: uint256,
    entry_index: uint256,
    item_digest: bytes32,
    label_hash: bytes32,
    proof: DynArray[bytes32, _MAX_PROOF],
) -> bool:
    """
    @notice Proves that an item is part of a registry entry.
    @param dataset_id The dataset id.
    @param entry_index 0-based entry index.
    @param item_digest sha-256 digest of the item (the digest in its CID).
    @param label_hash keccak256 of the UTF-8 label.
    @param proof Sibling hashes from the leaf up to the root.
    @return bool True when the leaf
            keccak256(keccak256(item_digest ‖ label_hash)) is under the
            entry's root.
    """
    proposal_id: uint256 = self._entry_proposal(dataset_id, entry_index)
    leaf: bytes32 = keccak256(keccak256(concat(item_digest, label_hash)))
    return merkle._verify(proof, self._root[proposal_id], leaf)


@external
@view
def balance_of_at(account: address, dataset_id: uint256, block_number: uint256) -> uint256:
    """
    @notice `account`'s share balance at the end of a past block; the
            dataset's supply for the zero address.
    @param account The holder (the zero address for the supply).
    @param dataset_id The dataset id.
    @param block_number A block before the current one.
    @return uint256 The balance.
    """
    assert block_number < block.number, "datamarket: future block"
    return self._value_at(account, dataset_id, block_number)


@external
@view
def withdrawable(dataset_id: uint256, holder: address) -> uint256:
    """
    @notice Revenue `holder` can withdraw now.
    @param dataset_id The dataset id.
    @param holder The holder.
    @return uint256 Amount in wei.
    """
    return self._withdrawable(dataset_id, holder, self._account[holder][dataset_id])


@external
@view
def withdrawn(dataset_id: uint256, holder: address) -> uint256:
    """
    @notice Revenue `holder` has withdrawn so far.
    @param dataset_id The dataset id.
    @param holder The holder.
    @return uint256 Amount in wei.
    """
    return self._account[holder][dataset_id] & _MASK192


@external
@view
def revenue_total(dataset_id: uint256) -> uint256:
    """
    @notice All revenue ever paid to the dataset, forfeited bonds included
            (informative; wraps only past 2**128 wei).
    @param dataset_id The dataset id.
    @return uint256 Amount in wei.
    """
    return self._revenue[dataset_id] & _MASK128


@external
@view
def revenue_held(dataset_id: uint256) -> uint256:
    """
    @notice Revenue of the dataset not yet withdrawn by its holders; what
            the contract caps (below 2**96 wei), never the lifetime total.
    @param dataset_id The dataset id.
    @return uint256 Amount in wei.
    """
    return self._held[dataset_id]


@external
@view
def refundable(account: address) -> uint256:
    """
    @notice Bonds refunded to `account` and not yet pulled.
    @param account The account.
    @return uint256 Amount in wei.
    """
    return self._refunds[account]


@internal
@view
def _dataset_params(dataset_id: uint256) -> uint256:
    params: uint256 = self._params[dataset_id]
    # voting_period > 0, so an existing dataset never has a zero word.
    assert params != 0, "datamarket: unknown dataset"
    return params


@internal
@view
def _proposal_core(proposal_id: uint256) -> uint256:
    core: uint256 = self._core[proposal_id]
    # dataset ids start at 1, so an existing proposal never has a zero word.
    assert core != 0, "datamarket: unknown proposal"
    return core


@internal
@view
def _entry_proposal(dataset_id: uint256, index: uint256) -> uint256:
    self._dataset_params(dataset_id)
    assert index < self._entry_count[dataset_id], "datamarket: unknown entry"
    return self._entries[dataset_id][index] & _MASK64


@internal
@pure
def _items_reward(item_count: uint256, base_reward_per_item: uint256, cap: uint256) -> uint256:
    # Saturate instead of overflowing: the result is capped anyway.
    if base_reward_per_item != 0 and item_count > cap // base_reward_per_item:
        return cap
    return item_count * base_reward_per_item


@internal
@view
def _checkpoints_until(account: address, dataset_id: uint256, block_number: uint256) -> uint256:
    # How many of the account's checkpoints are at or before `block_number`.
    count: uint256 = self._account[account][dataset_id] >> 192
    if count == 0:
        return 0
    if self._checkpoints[account][dataset_id][unsafe_sub(count, 1)] >> 192 <= block_number:
        return count
    # Binary search for the first checkpoint after `block_number` among
    # all but the latest one (which is known to be after it).
    low: uint256 = 0
    high: uint256 = unsafe_sub(count, 1)
    for _: uint256 in range(_SEARCH_STEPS):
        if low >= high:
            break
        mid: uint256 = unsafe_div(unsafe_add(low, high), 2)
        if self._checkpoints[account][dataset_id][mid] >> 192 <= block_number:
            low = unsafe_add(mid, 1)
        else:
            high = mid
    return low


@internal
@view
def _value_at(account: address, dataset_id: uint256, block_number: uint256) -> uint256:
    until: uint256 = self._checkpoints_until(account, dataset_id, block_number)
    if until == 0:
        return 0
    return self._checkpoints[account][dataset_id][unsafe_sub(until, 1)] & _MASK192


@internal
@view
def _value_at_hint(account: address, dataset_id: uint256, block_number: uint256, hint: uint256) -> uint256:
    # Checkpoints are appended and never cleared, and every written word is
    # non-zero (its block is), so an empty slot marks the end: two reads
    # check the hint whatever the length of the history.
    found: uint256 = self._checkpoints[account][dataset_id][hint]
    if found == 0 or found >> 192 > block_number:
        assert hint == 0, "datamarket: bad checkpoint hint"
        return 0
    following: uint256 = self._checkpoints[account][dataset_id][hint + 1]
    assert following == 0 or following >> 192 > block_number, "datamarket: bad checkpoint hint"
    return found & _MASK192


@internal
def _checkpoint(account: address, dataset_id: uint256, amount: uint256, increase: bool):
    state: uint256 = self._account[account][dataset_id]
    count: uint256 = state >> 192
    latest: uint256 = 0
    if count != 0:
        latest = self._checkpoints[account][dataset_id][unsafe_sub(count, 1)]
    value: uint256 = latest & _MASK192
    if increase:
        value += amount
    else:
        assert value >= amount, "datamarket: insufficient balance"
        value = unsafe_sub(value, amount)
    word: uint256 = (block.number << 192) | value
    if count != 0 and latest >> 192 == block.number:
        self._checkpoints[account][dataset_id][unsafe_sub(count, 1)] = word
    else:
        self._checkpoints[account][dataset_id][count] = word
        self._account[account][dataset_id] = unsafe_add(state, _CHECKPOINT_ONE)


@internal
def _mint(to: address, dataset_id: uint256, amount: uint256):
    # Checkpoints first: the latest checkpoint of a holder always equals
    # their module balance, and supply lives under the zero address.
    assert erc1155.total_supply[dataset_id] + amount <= _MAX_SUPPLY, "datamarket: supply cap"
    self._checkpoint(to, dataset_id, amount, True)
    self._checkpoint(empty(address), dataset_id, amount, True)
    self._correction[dataset_id][to] = unsafe_sub(
        self._correction[dataset_id][to], unsafe_mul(self._per_share[dataset_id], amount)
    )
    # Mints skip the receiver hook, so a contributor contract that refuses
    # ERC-1155 tokens cannot keep its proposal from finalizing (and no
    # hook runs inside `finalize` at all).
    erc1155.total_supply[dataset_id] += amount
    erc1155.balanceOf[to][dataset_id] += amount
    log IERC1155.TransferSingle(_operator=msg.sender, _from=empty(address), _to=to, _id=dataset_id, _value=amount)


@internal
def _move(owner: address, to: address, dataset_id: uint256, amount: uint256):
    if amount == 0 or owner == to:
        return
    self._checkpoint(owner, dataset_id, amount, False)
    self._checkpoint(to, dataset_id, amount, True)
    correction: uint256 = unsafe_mul(self._per_share[dataset_id], amount)
    self._correction[dataset_id][owner] = unsafe_add(self._correction[dataset_id][owner], correction)
    self._correction[dataset_id][to] = unsafe_sub(self._correction[dataset_id][to], correction)


@internal
def _distribute(dataset_id: uint256, payer: address, amount: uint256, kind: uint8):
    supply: uint256 = erc1155.total_supply[dataset_id]
    assert supply > 0, "datamarket: no shareholders"
    held: uint256 = self._held[dataset_id] + amount
    assert held <= _MAX_HELD, "datamarket: revenue overflow"
    self._held[dataset_id] = held
    revenue: uint256 = self._revenue[dataset_id]
    # amount < 2**96 and the remainder < supply < 2**94: no overflow.
    magnified: uint256 = amount * _MAGNITUDE + (revenue >> 128)
    self._per_share[dataset_id] = unsafe_add(self._per_share[dataset_id], magnified // supply)
    # The remainder is below supply <= _MAX_SUPPLY, so it fits in 128 bits.
    self._revenue[dataset_id] = ((magnified % supply) << 128) | ((revenue + amount) & _MASK128)
    log RevenueDeposited(dataset_id=dataset_id, payer=payer, amount=amount, kind=kind)


@internal
@view
def _withdrawable(dataset_id: uint256, holder: address, account: uint256) -> uint256:
    # Modular: the true difference is below _MAX_HELD * _MAGNITUDE.
    magnified: uint256 = unsafe_add(
        unsafe_mul(self._per_share[dataset_id], erc1155.balanceOf[holder][dataset_id]),
        self._correction[dataset_id][holder],
    )
    return unsafe_sub(magnified, unsafe_mul(account & _MASK192, _MAGNITUDE)) // _MAGNITUDE


@internal
def _mint_allowance(dataset_id: uint256, supply: uint256, params: uint256) -> uint256:
    # All proposals accepted within one voting period mint together at most
    # max_mint_bps of the snapshot supply, so a majority cannot dilute the
    # rest faster, however many proposals it opens.
    window: uint256 = self._mint_window[dataset_id]
    if (window >> 192) + ((params >> 96) & _MASK32) <= block.timestamp:
        window = block.timestamp << 192
        self._mint_window[dataset_id] = window
    # supply < 2**94 and max_mint_bps <= 10000: no overflow.
    cap: uint256 = supply * ((params >> 193) & _MASK16) // _BPS
    return cap - min(cap, window & _MASK192)


@internal
@view
def _epoch_in_effect(dataset_id: uint256, params: uint256) -> uint256:
    # At most the latest change is pending; the one before it is in effect.
    epochs: uint256 = (params >> 225) & _MASK16
    if self._evaluators[dataset_id][epochs - 1] >> 160 <= block.timestamp:
        return epochs - 1
    return epochs - 2


@internal
@view
def _epoch_evaluator(dataset_id: uint256, epoch: uint256) -> address:
    return convert(convert(self._evaluators[dataset_id][epoch] & _MASK160, uint160), address)


@internal
@view
def _decide(yes: uint256, no: uint256, supply: uint256, params: uint256, deadline: uint256) -> bool:
    # Decided early only when no later vote could overturn it (and, for an
    # acceptance, once the dataset's minimum time has passed or the vote is
    # unanimous); otherwise
    # the full rule applies once the voting period is over.
    quorum: uint256 = (params >> 128) & _MASK16
    approval: uint256 = (params >> 144) & _MASK16
    if 2 * yes > supply and yes * _BPS >= approval * supply and yes * _BPS >= quorum * supply:
        # The delay protects a minority; a unanimous vote leaves none.
        opened: uint256 = deadline - ((params >> 96) & _MASK32)
        if yes == supply or block.timestamp >= opened + ((params >> 161) & _MASK32):
            return True
        assert block.timestamp > deadline, "datamarket: acceptance delay"
    elif 2 * no > supply and (supply - no) * _BPS < approval * supply:
        return False
    assert block.timestamp > deadline, "datamarket: voting open"
    cast: uint256 = yes + no
    return cast > 0 and cast * _BPS >= quorum * supply and yes * _BPS >= approval * cast
