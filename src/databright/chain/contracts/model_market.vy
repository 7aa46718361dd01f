# pragma version ~=0.4.3
"""
@title ModelMarket
@custom:contract-name model_market
@license Apache-2.0
@notice Models trained on DataMarket datasets, sold per prediction.
        A model is registered against a dataset with digests of its spec,
        checkpoint and training report, a price per prediction and a
        royalty to the dataset; registering pays the dataset's training
        fee, except for a model trained by a completed ComputeMarket job,
        whose submission paid it already (`register_from_job`, once per
        job). Users pay through payment channels: one deposit, then a
        cumulative EIP-712 voucher per request; the owner redeems the
        latest voucher in one transaction that also pays the royalty to
        the dataset's shareholders. docs/models.md is the reference.
@dev Hot state is packed by hand because Vyper does not pack struct
     members; the public getters return unpacked structs.
     - model word: owner (0..159) | dataset id (160..223)
       | royalty bps (224..239) | version count (240..255)
     - channel party word: user (0..159) | model id (160..207)
       | closes_at (208..254) | settled (255)
     - channel funds word: deposit (0..127) | redeemed (128..255)
     Vouchers are cumulative: a later voucher replaces an earlier one, so
     only the latest needs keeping and none can be paid twice. The
     contract never counts predictions; the price is what the owner's
     server asks each voucher to add, and a voucher pays exactly the
     amount its user signed, whatever the price becomes later.
"""


from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator as eip712

import IComputeMarketJobs
import IDataMarketForModels


initializes: eip712


exports: eip712.eip712Domain


_BPS: constant(uint256) = 10_000
_MAX_SCORE: constant(uint256) = 1_000_000
_VOUCHER_TYPEHASH: constant(bytes32) = keccak256("Voucher(uint256 channel,uint256 amount)")

_MASK47: constant(uint256) = 2**47 - 1
_MASK48: constant(uint256) = 2**48 - 1
_MASK64: constant(uint256) = 2**64 - 1
_MASK128: constant(uint256) = 2**128 - 1
_MASK160: constant(uint256) = 2**160 - 1
_SETTLED: constant(uint256) = 2**255
# ComputeMarket's status of a completed job
_JOB_COMPLETED: constant(uint256) = 3


struct Model:
    owner: address
    dataset_id: uint256
    royalty_bps: uint256
    price: uint256
    version_count: uint256


struct Version:
    spec_digest: bytes32
    checkpoint_digest: bytes32
    report_digest: bytes32
    claimed_score: uint256
    block_number: uint256


struct Verification:
    score: uint256
    report_digest: bytes32
    evaluator: address
    block_number: uint256


struct Channel:
    user: address
    model_id: uint256
    deposit: uint256
    redeemed: uint256
    closes_at: uint256
    settled: bool


data_market: public(immutable(IDataMarketForModels))
challenge_period: public(immutable(uint256))
# who may link the ComputeMarket, once: a ModelMarket deployed before its
# ComputeMarket existed is linked when that is deployed
deployer: public(immutable(address))
# empty until linked; then fixed, since it decides whose jobs stand in for
# the training fee
compute_market: public(IComputeMarketJobs)

# model count (0..127) | channel count (128..255): one word, so the first
# channel never pays for a zero-to-non-zero store
_counts: uint256
_model: HashMap[uint256, uint256]
_price: HashMap[uint256, uint256]
# model id => version (from 1) => version
_versions: HashMap[uint256, HashMap[uint256, Version]]
_verified: HashMap[uint256, HashMap[uint256, Verification]]
_party: HashMap[uint256, uint256]
_funds: HashMap[uint256, uint256]
# ComputeMarket job id => the model registered from it (0 while none)
job_model: public(HashMap[uint256, uint256])


event ModelRegistered:
    model_id: indexed(uint256)
    dataset_id: indexed(uint256)
    owner: indexed(address)
    price: uint256
    royalty_bps: uint256
    training_fee: uint256


event ComputeMarketLinked:
    compute_market: indexed(address)


event ModelTrainedOnJob:
    model_id: indexed(uint256)
    job_id: indexed(uint256)
    # what the job's submission paid the dataset; this contract paid nothing more
    training_fee: uint256


event VersionPublished:
    model_id: indexed(uint256)
    version: uint256
    spec_digest: bytes32
    checkpoint_digest: bytes32
    report_digest: bytes32
    claimed_score: uint256


event PriceChanged:
    model_id: indexed(uint256)
    price: uint256


event ScoreVerified:
    model_id: indexed(uint256)
    version: uint256
    evaluator: indexed(address)
    score: uint256
    report_digest: bytes32


event ChannelOpened:
    channel_id: indexed(uint256)
    model_id: indexed(uint256)
    user: indexed(address)
    deposit: uint256


event ChannelToppedUp:
    channel_id: indexed(uint256)
    amount: uint256
    deposit: uint256


event VoucherRedeemed:
    channel_id: indexed(uint256)
    model_id: indexed(uint256)
    amount: uint256
    paid: uint256
    royalty: uint256


event ChannelClosing:
    channel_id: indexed(uint256)
    closes_at: uint256


event ChannelSettled:
    channel_id: indexed(uint256)
    user: indexed(address)
    refund: uint256


@deploy
def __init__(data_market_: IDataMarketForModels, challenge_period_: uint256):
    """
    @param data_market_ The DataMarket whose datasets models train on.
    @param challenge_period_ Seconds a closing channel stays redeemable.
    """
    assert data_market_.address != empty(address), "modelmarket: no data market"
    assert challenge_period_ > 0 and challenge_period_ <= 2**32, "modelmarket: bad challenge period"
    eip712.__init__("DataBright ModelMarket", "1")
    data_market = data_market_
    challenge_period = challenge_period_
    deployer = msg.sender


@external
def link_compute_market(compute_market_: IComputeMarketJobs):
    """
    @notice Names the ComputeMarket whose completed jobs may register
            models without paying the training fee again; once, and only
            by the deployer. It must pay this contract's DataMarket.
    @param compute_market_ The ComputeMarket.
    """
    assert msg.sender == deployer, "modelmarket: not the deployer"
    assert self.compute_market.address == empty(address), "modelmarket: compute market already linked"
    assert compute_market_.address != empty(address), "modelmarket: no compute market"
    assert staticcall compute_market_.data_market() == data_market.address, "modelmarket: compute market pays another data market"
    self.compute_market = compute_market_
    log ComputeMarketLinked(compute_market=compute_market_.address)


@external
@payable
@nonreentrant
def register(
    dataset_id: uint256,
    spec_digest: bytes32,
    checkpoint_digest: bytes32,
    report_digest: bytes32,
    claimed_score: uint256,
    price: uint256,
    royalty_bps: uint256,
) -> uint256:
    """
    @notice Registers a model trained on a dataset; the caller owns it.
            `msg.value` must be the dataset's training fee, which is paid
            to the dataset's shareholders in this transaction.
    @param dataset_id The DataMarket dataset the model was trained on.
    @param spec_digest sha-256 digest of the model spec CID.
    @param checkpoint_digest sha-256 digest of the checkpoint (safetensors).
    @param report_digest sha-256 digest of the training report CID.
    @param claimed_score The owner's validation score in ppm (0..1e6).
    @param price Price per prediction in wei.
    @param royalty_bps Share of every payment paid to the dataset
           (at least the dataset's minimum, at most 10000).
    @return uint256 The new model id (from 1).
    """
    fee: uint256 = staticcall data_market.training_fee(dataset_id)
    assert msg.value == fee, "modelmarket: value is not the training fee"
    model_id: uint256 = self._new_model(dataset_id, price, royalty_bps, fee)
    self._publish(model_id, spec_digest, checkpoint_digest, report_digest, claimed_score)
    if fee > 0:
        extcall data_market.deposit(dataset_id, value=fee)
    return model_id


@external
def register_from_job(
    job_id: uint256,
    dataset_id: uint256,
    spec_digest: bytes32,
    checkpoint_digest: bytes32,
    report_digest: bytes32,
    claimed_score: uint256,
    price: uint256,
    royalty_bps: uint256,
) -> uint256:
    """
    @notice Registers the model a completed ComputeMarket job trained; the
            caller, the job's submitter, owns it. The job's submission
            paid the dataset's training fee, so nothing is paid here. One
            model per job.
    @param job_id The linked ComputeMarket's job id.
    @param dataset_id The dataset the job trained on.
    @param spec_digest sha-256 digest of the model spec CID.
    @param checkpoint_digest sha-256 digest of the checkpoint: the digest
           the job's completion recorded.
    @param report_digest sha-256 digest of the training report CID.
    @param claimed_score The owner's validation score in ppm (0..1e6).
    @param price Price per prediction in wei.
    @param royalty_bps Share of every payment paid to the dataset
           (at least the dataset's minimum, at most 10000).
    @return uint256 The new model id (from 1).
    """
    market: IComputeMarketJobs = self.compute_market
    assert market.address != empty(address), "modelmarket: no compute market"
    job: IComputeMarketJobs.Job = staticcall market.get_job(job_id)
    assert self.job_model[job_id] == 0, "modelmarket: job already registered"
    assert job.status == _JOB_COMPLETED, "modelmarket: job not completed"
    assert job.submitter == msg.sender, "modelmarket: not the job's submitter"
    assert job.dataset_id == dataset_id, "modelmarket: job trained on another dataset"
    assert job.checkpoint_digest == checkpoint_digest, "modelmarket: not the job's checkpoint"
    model_id: uint256 = self._new_model(dataset_id, price, royalty_bps, 0)
    self.job_model[job_id] = model_id
    log ModelTrainedOnJob(model_id=model_id, job_id=job_id, training_fee=job.training_fee)
    self._publish(model_id, spec_digest, checkpoint_digest, report_digest, claimed_score)
    return model_id


@external
def publish_version(
    model_id: uint256,
    spec_digest: bytes32,
    checkpoint_digest: bytes32,
    report_digest: bytes32,
    claimed_score: uint256,
) -> uint256:
    """
    @notice Publishes a new version of a model; earlier versions stay.
            Only the model's owner.
    @param model_id The model id.
    @param spec_digest sha-256 digest of the model spec CID.
    @param checkpoint_digest sha-256 digest of the checkpoint.
    @param report_digest sha-256 digest of the training report CID.
    @param claimed_score The owner's validation score in ppm (0..1e6).
    @return uint256 The new version number.
    """
    self._check_owner(model_id)
    return self._publish(model_id, spec_digest, checkpoint_digest, report_digest, claimed_score)


@external
def set_price(model_id: uint256, price: uint256):
    """
    @notice Changes the price per prediction. Vouchers already signed
            keep paying what they say. Only the model's owner.
    @param model_id The model id.
    @param price The new price per prediction in wei.
    """
    self._check_owner(model_id)
    self._price[model_id] = price
    log PriceChanged(model_id=model_id, price=price)


@external
def post_verified_score(model_id: uint256, version: uint256, score: uint256, report_digest: bytes32):
    """
    @notice Posts the score the dataset's evaluator measured for a model
            version, with the report anyone can re-run; once per version.
            Only the evaluator of the model's dataset.
    @param model_id The model id.
    @param version The version number (from 1).
    @param score The verified validation score in ppm (0..1e6).
    @param report_digest sha-256 digest of the verification report CID.
    """
    word: uint256 = self._model_word(model_id)
    assert version >= 1 and version <= word >> 240, "modelmarket: unknown version"
    evaluator: address = staticcall data_market.evaluator((word >> 160) & _MASK64)
    assert evaluator != empty(address) and msg.sender == evaluator, "modelmarket: not the dataset's evaluator"
    assert score <= _MAX_SCORE, "modelmarket: bad score"
    assert report_digest != empty(bytes32), "modelmarket: no report"
    assert self._verified[model_id][version].block_number == 0, "modelmarket: score already verified"
    self._verified[model_id][version] = Verification(
        score=score, report_digest=report_digest, evaluator=msg.sender, block_number=block.number
    )
    log ScoreVerified(
        model_id=model_id, version=version, evaluator=msg.sender, score=score, report_digest=report_digest
    )


@external
@payable
def open_channel(model_id: uint256) -> uint256:
    """
    @notice Opens a payment channel from the caller to a model with
            `msg.value` as its deposit.
    @param model_id The model id.
    @return uint256 The new channel id (from 1).
    """
    assert msg.value > 0, "modelmarket: zero deposit"
    assert msg.value <= _MASK128, "modelmarket: deposit too large"
    self._model_word(model_id)
    counts: uint256 = self._counts
    channel_id: uint256 = (counts >> 128) + 1
    self._counts = unsafe_add(counts, 1 << 128)
    self._party[channel_id] = convert(msg.sender, uint256) | (model_id << 160)
    self._funds[channel_id] = msg.value
    log ChannelOpened(channel_id=channel_id, model_id=model_id, user=msg.sender, deposit=msg.value)
    return channel_id


@external
@payable
def top_up(channel_id: uint256):
    """
    @notice Adds `msg.value` to an open channel's deposit.
    @param channel_id The channel id.
    """
    assert msg.value > 0, "modelmarket: zero deposit"
    party: uint256 = self._party_word(channel_id)
    assert (party >> 208) & _MASK47 == 0, "modelmarket: channel closing"
    funds: uint256 = self._funds[channel_id]
    deposit: uint256 = (funds & _MASK128) + msg.value
    assert deposit <= _MASK128, "modelmarket: deposit too large"
    self._funds[channel_id] = (funds >> 128 << 128) | deposit
    log ChannelToppedUp(channel_id=channel_id, amount=msg.value, deposit=deposit)


@external
@nonreentrant
def redeem(channel_id: uint256, amount: uint256, signature: Bytes[65]):
    """
    @notice Redeems the channel's latest voucher: pays what it adds to
            the amount already redeemed, the royalty to the dataset's
            shareholders and the rest to the model's owner. Anyone may
            submit it; the money goes to the owner either way.
    @param channel_id The channel id.
    @param amount The voucher's cumulative amount in wei.
    @param signature The user's EIP-712 signature of the voucher.
    """
    party: uint256 = self._party_word(channel_id)
    assert party & _SETTLED == 0, "modelmarket: channel settled"
    closes_at: uint256 = (party >> 208) & _MASK47
    assert closes_at == 0 or block.timestamp < closes_at, "modelmarket: challenge period over"
    funds: uint256 = self._funds[channel_id]
    redeemed: uint256 = funds >> 128
    assert amount > redeemed, "modelmarket: voucher already redeemed"
    assert amount <= funds & _MASK128, "modelmarket: voucher above the deposit"
    digest: bytes32 = eip712._hash_typed_data_v4(keccak256(abi_encode(_VOUCHER_TYPEHASH, channel_id, amount)))
    signer: address = ecdsa._recover_sig(digest, signature)
    assert signer == convert(party & _MASK160, address), "modelmarket: bad signature"
    self._funds[channel_id] = (amount << 128) | (funds & _MASK128)

    model_id: uint256 = (party >> 160) & _MASK48
    word: uint256 = self._model[model_id]
    paid: uint256 = amount - redeemed
    royalty: uint256 = paid * ((word >> 224) & 65535) // _BPS
    log VoucherRedeemed(channel_id=channel_id, model_id=model_id, amount=amount, paid=paid, royalty=royalty)
    if royalty > 0:
        extcall data_market.deposit((word >> 160) & _MASK64, value=royalty)
    if paid > royalty:
        raw_call(convert(word & _MASK160, address), b"", value=paid - royalty)


@external
def close(channel_id: uint256):
    """
    @notice Starts closing a channel: the owner may still redeem during
            the challenge period, after which `settle` refunds the rest.
            Only the channel's user.
    @param channel_id The channel id.
    """
    party: uint256 = self._party_word(channel_id)
    assert msg.sender == convert(party & _MASK160, address), "modelmarket: not the channel's user"
    assert (party >> 208) & _MASK47 == 0, "modelmarket: channel closing"
    closes_at: uint256 = block.timestamp + challenge_period
    self._party[channel_id] = party | (closes_at << 208)
    log ChannelClosing(channel_id=channel_id, closes_at=closes_at)


@external
@nonreentrant
def settle(channel_id: uint256):
    """
    @notice Refunds what was never redeemed to the channel's user once
            the challenge period is over. Anyone may call it.
    @param channel_id The channel id.
    """
    party: uint256 = self._party_word(channel_id)
    assert party & _SETTLED == 0, "modelmarket: channel settled"
    closes_at: uint256 = (party >> 208) & _MASK47
    assert closes_at != 0, "modelmarket: channel open"
    assert block.timestamp >= closes_at, "modelmarket: challenge period running"
    self._party[channel_id] = party | _SETTLED
    funds: uint256 = self._funds[channel_id]
    refund: uint256 = (funds & _MASK128) - (funds >> 128)
    user: address = convert(party & _MASK160, address)
    log ChannelSettled(channel_id=channel_id, user=user, refund=refund)
    if refund > 0:
        raw_call(user, b"", value=refund)


@external
@view
def model_count() -> uint256:
    """
    @notice Number of models; ids run from 1 to this number.
    @return uint256 The model count.
    """
    return self._counts & _MASK128


@external
@view
def channel_count() -> uint256:
    """
    @notice Number of channels; ids run from 1 to this number.
    @return uint256 The channel count.
    """
    return self._counts >> 128


@external
@view
def get_model(model_id: uint256) -> Model:
    """
    @notice A model's owner, dataset, royalty, price and version count.
    @param model_id The model id.
    @return Model The model.
    """
    word: uint256 = self._model_word(model_id)
    return Model(
        owner=convert(word & _MASK160, address),
        dataset_id=(word >> 160) & _MASK64,
        royalty_bps=(word >> 224) & 65535,
        price=self._price[model_id],
        version_count=word >> 240,
    )


@external
@view
def get_version(model_id: uint256, version: uint256) -> Version:
    """
    @notice One published version of a model.
    @param model_id The model id.
    @param version The version number (from 1).
    @return Version The version.
    """
    word: uint256 = self._model_word(model_id)
    assert version >= 1 and version <= word >> 240, "modelmarket: unknown version"
    return self._versions[model_id][version]


@external
@view
def get_verification(model_id: uint256, version: uint256) -> Verification:
    """
    @notice The evaluator's verified score of a version (block 0 if none).
    @param model_id The model id.
    @param version The version number (from 1).
    @return Verification The verification.
    """
    word: uint256 = self._model_word(model_id)
    assert version >= 1 and version <= word >> 240, "modelmarket: unknown version"
    return self._verified[model_id][version]


@external
@view
def get_channel(channel_id: uint256) -> Channel:
    """
    @notice A channel's parties, deposit, amount redeemed and closing state.
    @param channel_id The channel id.
    @return Channel The channel (closes_at 0 while open).
    """
    party: uint256 = self._party_word(channel_id)
    funds: uint256 = self._funds[channel_id]
    return Channel(
        user=convert(party & _MASK160, address),
        model_id=(party >> 160) & _MASK48,
        deposit=funds & _MASK128,
        redeemed=funds >> 128,
        closes_at=(party >> 208) & _MASK47,
        settled=party & _SETTLED != 0,
    )


@external
@view
def voucher_digest(channel_id: uint256, amount: uint256) -> bytes32:
    """
    @notice The EIP-712 digest a channel's user signs for a voucher.
    @param channel_id The channel id.
    @param amount The cumulative amount in wei.
    @return bytes32 The digest.
    """
    return eip712._hash_typed_data_v4(keccak256(abi_encode(_VOUCHER_TYPEHASH, channel_id, amount)))


@internal
@view
def _model_word(model_id: uint256) -> uint256:
    word: uint256 = self._model[model_id]
    # an owner is never the zero address, so a model never has a zero word
    assert word != 0, "modelmarket: unknown model"
    return word


@internal
@view
def _party_word(channel_id: uint256) -> uint256:
    party: uint256 = self._party[channel_id]
    assert party != 0, "modelmarket: unknown channel"
    return party


@internal
@view
def _check_owner(model_id: uint256):
    word: uint256 = self._model_word(model_id)
    assert msg.sender == convert(word & _MASK160, address), "modelmarket: not the model's owner"


@internal
def _new_model(dataset_id: uint256, price: uint256, royalty_bps: uint256, fee: uint256) -> uint256:
    assert royalty_bps <= _BPS, "modelmarket: royalty above 100%"
    assert royalty_bps >= staticcall data_market.min_royalty_bps(dataset_id), "modelmarket: royalty below the dataset's minimum"
    assert dataset_id <= _MASK64, "modelmarket: bad dataset"
    counts: uint256 = self._counts
    model_id: uint256 = (counts & _MASK128) + 1
    assert model_id <= _MASK48, "modelmarket: too many models"
    self._counts = unsafe_add(counts, 1)
    self._model[model_id] = convert(msg.sender, uint256) | (dataset_id << 160) | (royalty_bps << 224)
    self._price[model_id] = price
    log ModelRegistered(
        model_id=model_id,
        dataset_id=dataset_id,
        owner=msg.sender,
        price=price,
        royalty_bps=royalty_bps,
        training_fee=fee,
    )
    return model_id


@internal
def _publish(
    model_id: uint256,
    spec_digest: bytes32,
    checkpoint_digest: bytes32,
    report_digest: bytes32,
    claimed_score: uint256,
) -> uint256:
    assert spec_digest != empty(bytes32), "modelmarket: no spec"
    assert checkpoint_digest != empty(bytes32), "modelmarket: no checkpoint"
    assert report_digest != empty(bytes32), "modelmarket: no report"
    assert claimed_score <= _MAX_SCORE, "modelmarket: bad score"
    word: uint256 = self._model[model_id]
    version: uint256 = (word >> 240) + 1
    assert version <= 65535, "modelmarket: too many versions"
    self._model[model_id] = (word & (2**240 - 1)) | (version << 240)
    self._versions[model_id][version] = Version(
        spec_digest=spec_digest,
        checkpoint_digest=checkpoint_digest,
        report_digest=report_digest,
        claimed_score=claimed_score,
        block_number=block.number,
    )
    log VersionPublished(
        model_id=model_id,
        version=version,
        spec_digest=spec_digest,
        checkpoint_digest=checkpoint_digest,
        report_digest=report_digest,
        claimed_score=claimed_score,
    )
    return version
