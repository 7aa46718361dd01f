# pragma version ~=0.4.3
"""
@title ComputeMarket
@custom:contract-name compute_market
@license Apache-2.0
@notice Training jobs on DataMarket datasets, run by staked workers under
        attested coordinators. A data scientist submits a job with a budget
        held in escrow and pays the dataset's training fee to its
        shareholders in the same transaction. A coordinator whose
        attestation measurement is on the owner's allow-list accepts the
        job and completes it: each worker is paid per accepted task, never
        below its minimum fee, proven cheats lose stake to the submitter,
        and the unspent budget goes back to the submitter. A job not
        completed by its deadline refunds the submitter in full. A model's
        owner may instead submit a serving job (no training fee): workers
        answer the model's predictions and are paid a fixed fee per
        prediction, settled through the same completion.
        docs/compute.md is the reference.
@dev Every payment out is pulled (`withdraw_earnings`, `withdraw_refund`,
     `withdraw_stake`), so no receiver can block a completion or an
     expiry, and no call out happens before the state it depends on is
     written. A job's deadline falls within the unbonding delay, so:
     - a worker who could take part in a job can still be slashed when it
       completes (leaving takes the delay, counted from after the job was
       submitted, or the worker is not payable in that job at all);
     - a fee raise, which takes effect after the same delay, never reaches
       a job already submitted; a fee cut takes effect at once.
"""


from snekmate.auth import ownable
from snekmate.auth import ownable_2step

import IDataMarketForCompute
import IModelMarketForCompute


initializes: ownable
initializes: ownable_2step[ownable := ownable]


exports: (
    ownable_2step.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
)


_BPS: constant(uint256) = 10_000
_MASK64: constant(uint256) = 2**64 - 1
_MAX_PAYMENTS: constant(uint256) = 64
_MAX_SLASHES: constant(uint256) = 16

OPEN: constant(uint256) = 1
ACCEPTED: constant(uint256) = 2
COMPLETED: constant(uint256) = 3
EXPIRED: constant(uint256) = 4


struct Worker:
    stake: uint256
    min_fee: uint256
    # when the stake may be withdrawn; 0 while not unbonding
    unbonding_at: uint256
    active: bool
    tasks_paid: uint256
    earned: uint256
    slashed: uint256


# what is stored of a worker; lifetime tasks and earnings live in one word
# beside it (`_tallies`), so a payment writes two words, not three
struct Bond:
    stake: uint256
    min_fee: uint256
    unbonding_at: uint256
    active: bool
    slashed: uint256


struct PendingFee:
    fee: uint256
    effective_at: uint256


struct Coordinator:
    measurement: bytes32
    evidence_cid: String[100]
    registered_at: uint256


struct Job:
    submitter: address
    dataset_id: uint256
    spec_cid: String[100]
    rounds: uint256
    local_steps: uint256
    redundancy: uint256
    max_exposure_bps: uint256
    budget: uint256
    training_fee: uint256
    deadline: uint256
    submitted_at: uint256
    status: uint256
    coordinator: address
    accepted_at: uint256
    paid: uint256
    refunded: uint256
    compensation: uint256
    checkpoint_digest: bytes32
    report_cid: String[100]


struct Payment:
    worker: address
    tasks: uint256
    fee_per_task: uint256


struct Slash:
    worker: address
    amount: uint256
    evidence_cid: String[100]


# a serving job: workers answer a model's predictions; its Job has no rounds
struct Serving:
    model_id: uint256
    version: uint256
    fee_per_prediction: uint256


data_market: public(immutable(IDataMarketForCompute))
min_stake: public(immutable(uint256))
unbonding_delay: public(immutable(uint256))

_workers: HashMap[address, Bond]
# tasks paid (0..63) | wei earned (64..255), over the worker's lifetime
_tallies: HashMap[address, uint256]
_pending_fees: HashMap[address, PendingFee]
_coordinators: HashMap[address, Coordinator]
allowed_measurements: public(HashMap[bytes32, bool])
_jobs: HashMap[uint256, Job]
_job_count: uint256
# the budgets of jobs neither completed nor expired
total_held: public(uint256)
earnings: public(HashMap[address, uint256])
refunds: public(HashMap[address, uint256])
# set once by the owner; serving jobs need it to know a model's owner
model_market: public(IModelMarketForCompute)
_servings: HashMap[uint256, Serving]


event WorkerRegistered:
    worker: indexed(address)
    stake: uint256
    min_fee: uint256


event StakeAdded:
    worker: indexed(address)
    amount: uint256
    stake: uint256


event MinFeeChanged:
    worker: indexed(address)
    min_fee: uint256
    effective_at: uint256


event UnbondingBegun:
    worker: indexed(address)
    stake: uint256
    unbonding_at: uint256


event StakeWithdrawn:
    worker: indexed(address)
    amount: uint256


event EarningsWithdrawn:
    worker: indexed(address)
    amount: uint256


event RefundWithdrawn:
    account: indexed(address)
    amount: uint256


event MeasurementAllowed:
    measurement: indexed(bytes32)


event MeasurementRevoked:
    measurement: indexed(bytes32)


event CoordinatorRegistered:
    coordinator: indexed(address)
    measurement: indexed(bytes32)
    evidence_cid: String[100]


event CoordinatorRemoved:
    coordinator: indexed(address)


event JobSubmitted:
    job_id: indexed(uint256)
    dataset_id: indexed(uint256)
    submitter: indexed(address)
    spec_cid: String[100]
    rounds: uint256
    local_steps: uint256
    redundancy: uint256
    max_exposure_bps: uint256
    budget: uint256
    training_fee: uint256
    deadline: uint256


event ServingSubmitted:
    job_id: indexed(uint256)
    model_id: indexed(uint256)
    submitter: indexed(address)
    version: uint256
    fee_per_prediction: uint256
    redundancy: uint256
    budget: uint256
    deadline: uint256


event ModelMarketSet:
    model_market: indexed(address)


event JobAccepted:
    job_id: indexed(uint256)
    coordinator: indexed(address)


event WorkerPaid:
    job_id: indexed(uint256)
    worker: indexed(address)
    tasks: uint256
    fee_per_task: uint256
    amount: uint256


event WorkerSlashed:
    job_id: indexed(uint256)
    worker: indexed(address)
    amount: uint256
    evidence_cid: String[100]


event JobCompleted:
    job_id: indexed(uint256)
    coordinator: indexed(address)
    paid: uint256
    refunded: uint256
    compensation: uint256
    checkpoint_digest: bytes32
    report_cid: String[100]


event JobExpired:
    job_id: indexed(uint256)
    refunded: uint256


@deploy
def __init__(data_market_: IDataMarketForCompute, min_stake_: uint256, unbonding_delay_: uint256):
    """
    @param data_market_ The DataMarket whose datasets jobs train on.
    @param min_stake_ The least stake in wei a worker registers with.
    @param unbonding_delay_ Seconds between a worker's leaving and its
           stake's release; also the longest a job may run and the delay
           before a fee raise takes effect.
    """
    assert data_market_.address != empty(address), "computemarket: no data market"
    assert min_stake_ > 0, "computemarket: zero minimum stake"
    assert unbonding_delay_ > 0 and unbonding_delay_ <= 2**32, "computemarket: bad unbonding delay"
    ownable.__init__()
    ownable_2step.__init__()
    data_market = data_market_
    min_stake = min_stake_
    unbonding_delay = unbonding_delay_


@external
@payable
def register_worker(min_fee: uint256):
    """
    @notice Registers the caller as a worker with `msg.value` as its stake
            (at least `min_stake`) and a minimum fee per task.
    @param min_fee The least the worker accepts per task, in wei.
    """
    assert not self._workers[msg.sender].active, "computemarket: already registered"
    assert self._workers[msg.sender].unbonding_at == 0, "computemarket: already registered"
    assert msg.value >= min_stake, "computemarket: stake below the minimum"
    # a worker that left keeps its lifetime tasks, earnings and slashes
    self._workers[msg.sender].stake = msg.value
    self._workers[msg.sender].min_fee = min_fee
    self._workers[msg.sender].active = True
    if self._pending_fees[msg.sender].effective_at != 0:
        self._pending_fees[msg.sender] = empty(PendingFee)
    log WorkerRegistered(worker=msg.sender, stake=msg.value, min_fee=min_fee)


@external
@payable
def add_stake():
    """
    @notice Adds `msg.value` to the caller's stake. Only an active worker.
    """
    assert msg.value > 0, "computemarket: zero stake"
    assert self._workers[msg.sender].active, "computemarket: not an active worker"
    stake: uint256 = self._workers[msg.sender].stake + msg.value
    self._workers[msg.sender].stake = stake
    log StakeAdded(worker=msg.sender, amount=msg.value, stake=stake)


@external
def set_min_fee(min_fee: uint256):
    """
    @notice Changes the caller's minimum fee per task. A cut takes effect
            at once; a raise after `unbonding_delay`, so that it never
            reaches a job already submitted. Only a registered worker.
    @param min_fee The new minimum fee per task, in wei.
    """
    assert self._workers[msg.sender].active or self._workers[msg.sender].unbonding_at != 0, "computemarket: not a registered worker"
    current: uint256 = self._fee_at(msg.sender, block.timestamp)
    effective_at: uint256 = block.timestamp
    if min_fee <= current:
        self._workers[msg.sender].min_fee = min_fee
        self._pending_fees[msg.sender] = empty(PendingFee)
    else:
        # the raise replaces any pending one; the fee in effect now stays
        # in effect until the raise does
        effective_at = block.timestamp + unbonding_delay
        self._workers[msg.sender].min_fee = current
        self._pending_fees[msg.sender] = PendingFee(fee=min_fee, effective_at=effective_at)
    log MinFeeChanged(worker=msg.sender, min_fee=min_fee, effective_at=effective_at)


@external
def begin_unbonding():
    """
    @notice Starts the caller's leaving: it takes no new work and its stake
            can be withdrawn after `unbonding_delay`, until when it can
            still be slashed. Only an active worker.
    """
    assert self._workers[msg.sender].active, "computemarket: not an active worker"
    unbonding_at: uint256 = block.timestamp + unbonding_delay
    self._workers[msg.sender].active = False
    self._workers[msg.sender].unbonding_at = unbonding_at
    log UnbondingBegun(worker=msg.sender, stake=self._workers[msg.sender].stake, unbonding_at=unbonding_at)


@external
@nonreentrant
def withdraw_stake() -> uint256:
    """
    @notice Sends the caller its remaining stake once its unbonding delay
            is over; the caller may register again afterwards.
    @return uint256 The amount sent in wei.
    """
    unbonding_at: uint256 = self._workers[msg.sender].unbonding_at
    assert unbonding_at != 0, "computemarket: not unbonding"
    assert block.timestamp >= unbonding_at, "computemarket: unbonding delay running"
    amount: uint256 = self._workers[msg.sender].stake
    self._workers[msg.sender].stake = 0
    self._workers[msg.sender].unbonding_at = 0
    log StakeWithdrawn(worker=msg.sender, amount=amount)
    if amount > 0:
        raw_call(msg.sender, b"", value=amount)
    return amount


@external
@nonreentrant
def withdraw_earnings() -> uint256:
    """
    @notice Sends the caller every task payment credited to it so far.
    @return uint256 The amount sent in wei.
    """
    amount: uint256 = self.earnings[msg.sender]
    assert amount > 0, "computemarket: nothing to withdraw"
    self.earnings[msg.sender] = 0
    log EarningsWithdrawn(worker=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@nonreentrant
def withdraw_refund() -> uint256:
    """
    @notice Sends the caller every refund and slashing compensation
            credited to it as a job's submitter.
    @return uint256 The amount sent in wei.
    """
    amount: uint256 = self.refunds[msg.sender]
    assert amount > 0, "computemarket: nothing to refund"
    self.refunds[msg.sender] = 0
    log RefundWithdrawn(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
def allow_measurement(measurement: bytes32):
    """
    @notice Puts an attestation measurement on the allow-list. Only the
            owner.
    @param measurement The code measurement (e.g. an SGX MRENCLAVE or the
           software backend's package hash).
    """
    self._check_owner()
    assert measurement != empty(bytes32), "computemarket: no measurement"
    assert not self.allowed_measurements[measurement], "computemarket: measurement already allowed"
    self.allowed_measurements[measurement] = True
    log MeasurementAllowed(measurement=measurement)


@external
def revoke_measurement(measurement: bytes32):
    """
    @notice Takes a measurement off the allow-list; every coordinator
            registered with it stops being able to act at once. Only the
            owner.
    @param measurement The code measurement.
    """
    self._check_owner()
    assert self.allowed_measurements[measurement], "computemarket: measurement not allowed"
    self.allowed_measurements[measurement] = False
    log MeasurementRevoked(measurement=measurement)


@external
def register_coordinator(key: address, measurement: bytes32, evidence_cid: String[100]):
    """
    @notice Registers a coordinator's key with the allow-listed measurement
            its attestation showed and the CID of that evidence (quote and
            collateral), checked off-chain by the owner; registering a key
            again replaces its record. Only the owner.
    @param key The coordinator's Ethereum address.
    @param measurement The attested measurement.
    @param evidence_cid CID of the attestation evidence.
    """
    self._check_owner()
    assert key != empty(address), "computemarket: no coordinator"
    assert self.allowed_measurements[measurement], "computemarket: measurement not allowed"
    assert len(evidence_cid) > 0, "computemarket: no evidence"
    self._coordinators[key] = Coordinator(
        measurement=measurement, evidence_cid=evidence_cid, registered_at=block.timestamp
    )
    log CoordinatorRegistered(coordinator=key, measurement=measurement, evidence_cid=evidence_cid)


@external
def remove_coordinator(key: address):
    """
    @notice Removes a coordinator's key. Only the owner.
    @param key The coordinator's Ethereum address.
    """
    self._check_owner()
    assert self._coordinators[key].registered_at != 0, "computemarket: not a coordinator"
    self._coordinators[key] = empty(Coordinator)
    log CoordinatorRemoved(coordinator=key)


@external
def set_model_market(model_market_: IModelMarketForCompute):
    """
    @notice Names the ModelMarket whose models serving jobs serve; it can
            be set only once. Only the owner.
    @param model_market_ The ModelMarket contract.
    """
    self._check_owner()
    assert self.model_market.address == empty(address), "computemarket: model market already set"
    assert model_market_.address != empty(address), "computemarket: no model market"
    self.model_market = model_market_
    log ModelMarketSet(model_market=model_market_.address)


@external
@payable
@nonreentrant
def submit_job(
    dataset_id: uint256,
    spec_cid: String[100],
    rounds: uint256,
    local_steps: uint256,
    redundancy: uint256,
    max_exposure_bps: uint256,
    budget: uint256,
    deadline: uint256,
) -> uint256:
    """
    @notice Submits a training job. `msg.value` must be the budget plus the
            dataset's training fee; the budget is held in escrow and the
            fee is paid to the dataset's shareholders in this transaction.
    @param dataset_id The DataMarket dataset to train on.
    @param spec_cid CID of the model and training spec.
    @param rounds Federated-averaging rounds (at least 1).
    @param local_steps Local steps per task (at least 1).
    @param redundancy Workers per task: 1, or 3 for triple modular
           redundancy.
    @param max_exposure_bps The most of the dataset's items any one worker
           may ever see, in basis points (1..10000).
    @param budget The most paid to workers in wei, held in escrow.
    @param deadline When the job expires if not completed (unix time,
           within `unbonding_delay` from now).
    @return uint256 The new job id (from 1).
    """
    assert len(spec_cid) > 0, "computemarket: no spec"
    assert rounds > 0, "computemarket: no rounds"
    assert local_steps > 0, "computemarket: no local steps"
    assert redundancy == 1 or redundancy == 3, "computemarket: redundancy must be 1 or 3"
    assert max_exposure_bps > 0 and max_exposure_bps <= _BPS, "computemarket: bad exposure cap"
    assert budget > 0, "computemarket: zero budget"
    assert deadline > block.timestamp, "computemarket: deadline passed"
    assert deadline < block.timestamp + unbonding_delay, "computemarket: deadline beyond the unbonding delay"
    fee: uint256 = staticcall data_market.training_fee(dataset_id)
    assert msg.value == budget + fee, "computemarket: value is not budget plus training fee"
    job_id: uint256 = self._job_count + 1
    self._job_count = job_id
    # field by field: a struct literal would also write its zero members
    self._jobs[job_id].submitter = msg.sender
    self._jobs[job_id].dataset_id = dataset_id
    self._jobs[job_id].spec_cid = spec_cid
    self._jobs[job_id].rounds = rounds
    self._jobs[job_id].local_steps = local_steps
    self._jobs[job_id].redundancy = redundancy
    self._jobs[job_id].max_exposure_bps = max_exposure_bps
    self._jobs[job_id].budget = budget
    self._jobs[job_id].training_fee = fee
    self._jobs[job_id].deadline = deadline
    self._jobs[job_id].submitted_at = block.timestamp
    self._jobs[job_id].status = OPEN
    self.total_held += budget
    log JobSubmitted(
        job_id=job_id,
        dataset_id=dataset_id,
        submitter=msg.sender,
        spec_cid=spec_cid,
        rounds=rounds,
        local_steps=local_steps,
        redundancy=redundancy,
        max_exposure_bps=max_exposure_bps,
        budget=budget,
        training_fee=fee,
        deadline=deadline,
    )
    if fee > 0:
        extcall data_market.deposit(dataset_id, value=fee)
    return job_id


@external
@payable
def submit_serving(
    model_id: uint256,
    fee_per_prediction: uint256,
    redundancy: uint256,
    budget: uint256,
    deadline: uint256,
) -> uint256:
    """
    @notice Submits a serving job: workers answer the model's predictions
            and are paid `fee_per_prediction` for each one they answered
            in agreement with their group. `msg.value` is the budget, held
            in escrow; no training fee is due (the channel's price already
            pays the dataset its royalty). It is accepted, completed and
            expired like a training job. Only the model's owner.
    @param model_id The ModelMarket model to serve (its latest version).
    @param fee_per_prediction What a worker is paid per prediction, in wei.
    @param redundancy Workers per request: 1 (spot-checked by the
           coordinator), or 3 for triple modular redundancy.
    @param budget The most paid to workers in wei, held in escrow.
    @param deadline When the job expires if not completed (unix time,
           within `unbonding_delay` from now).
    @return uint256 The new job id, from the same sequence as training jobs.
    """
    market: IModelMarketForCompute = self.model_market
    assert market.address != empty(address), "computemarket: no model market"
    assert fee_per_prediction > 0, "computemarket: zero fee per prediction"
    assert redundancy == 1 or redundancy == 3, "computemarket: redundancy must be 1 or 3"
    assert budget > 0, "computemarket: zero budget"
    assert msg.value == budget, "computemarket: value is not the budget"
    assert deadline > block.timestamp, "computemarket: deadline passed"
    assert deadline < block.timestamp + unbonding_delay, "computemarket: deadline beyond the unbonding delay"
    model: IModelMarketForCompute.Model = staticcall market.get_model(model_id)
    assert model.owner == msg.sender, "computemarket: not the model's owner"
    job_id: uint256 = self._job_count + 1
    self._job_count = job_id
    # rounds stays 0: what tells a serving job from a training job
    self._jobs[job_id].submitter = msg.sender
    self._jobs[job_id].dataset_id = model.dataset_id
    self._jobs[job_id].redundancy = redundancy
    self._jobs[job_id].budget = budget
    self._jobs[job_id].deadline = deadline
    self._jobs[job_id].submitted_at = block.timestamp
    self._jobs[job_id].status = OPEN
    self._servings[job_id] = Serving(
        model_id=model_id, version=model.version_count, fee_per_prediction=fee_per_prediction
    )
    self.total_held += budget
    log ServingSubmitted(
        job_id=job_id,
        model_id=model_id,
        submitter=msg.sender,
        version=model.version_count,
        fee_per_prediction=fee_per_prediction,
        redundancy=redundancy,
        budget=budget,
        deadline=deadline,
    )
    return job_id


@external
def accept_job(job_id: uint256):
    """
    @notice Takes a job: from now on only the caller may complete it. A job
            whose coordinator has lost its standing (key removed or
            measurement revoked) may be taken over. Only a coordinator.
    @param job_id The job id.
    """
    self._check_coordinator(msg.sender)
    status: uint256 = self._job_status(job_id)
    if status == ACCEPTED:
        holder: address = self._jobs[job_id].coordinator
        assert holder != msg.sender, "computemarket: job already accepted"
        assert not self._is_coordinator(holder), "computemarket: job taken"
    else:
        assert status == OPEN, "computemarket: job closed"
    assert block.timestamp <= self._jobs[job_id].deadline, "computemarket: job past its deadline"
    self._jobs[job_id].status = ACCEPTED
    self._jobs[job_id].coordinator = msg.sender
    self._jobs[job_id].accepted_at = block.timestamp
    log JobAccepted(job_id=job_id, coordinator=msg.sender)


@external
def complete_job(
    job_id: uint256,
    payments: DynArray[Payment, _MAX_PAYMENTS],
    slashes: DynArray[Slash, _MAX_SLASHES],
    checkpoint_digest: bytes32,
    report_cid: String[100],
):
    """
    @notice Completes a job: credits each worker its tasks times its fee
            per task (pulled with `withdraw_earnings`), moves each slashed
            stake and the unspent budget to the submitter (pulled with
            `withdraw_refund`), and records the result. Only the job's
            coordinator, while it is a coordinator, by the deadline.
    @param job_id The job id.
    @param payments Per worker: accepted tasks and the fee per task, at
           least the worker's minimum fee in effect now; at most the
           budget in all.
    @param slashes Per proven cheat: the stake taken (at most what it has)
           and the CID of the evidence.
    @param checkpoint_digest sha-256 digest of the resulting checkpoint.
    @param report_cid CID of the job's report.
    """
    self._check_coordinator(msg.sender)
    assert self._job_status(job_id) == ACCEPTED, "computemarket: job not accepted"
    # only the fields needed: the spec and result strings cost four words each
    assert msg.sender == self._jobs[job_id].coordinator, "computemarket: not the job's coordinator"
    assert block.timestamp <= self._jobs[job_id].deadline, "computemarket: job past its deadline"
    budget: uint256 = self._jobs[job_id].budget
    submitted_at: uint256 = self._jobs[job_id].submitted_at
    assert checkpoint_digest != empty(bytes32), "computemarket: no checkpoint"
    assert len(report_cid) > 0, "computemarket: no report"
    # a serving job pays exactly the fee its owner offered per prediction
    serving: bool = self._jobs[job_id].rounds == 0
    serving_fee: uint256 = 0
    if serving:
        serving_fee = self._servings[job_id].fee_per_prediction

    paid: uint256 = 0
    for p: Payment in payments:
        assert p.tasks > 0, "computemarket: payment for no tasks"
        assert not serving or p.fee_per_task == serving_fee, "computemarket: fee is not the serving fee"
        self._check_worker(p.worker, submitted_at)
        assert p.fee_per_task >= self._fee_at(p.worker, block.timestamp), "computemarket: fee below the worker's minimum"
        amount: uint256 = p.tasks * p.fee_per_task
        paid += amount
        assert paid <= budget, "computemarket: payments above the budget"
        tally: uint256 = self._tallies[p.worker]
        tasks: uint256 = (tally & _MASK64) + p.tasks
        assert tasks <= _MASK64, "computemarket: too many tasks"
        # lifetime earnings are bounded by the ether in existence, far below 2**192
        self._tallies[p.worker] = (((tally >> 64) + amount) << 64) | tasks
        self.earnings[p.worker] += amount
        log WorkerPaid(job_id=job_id, worker=p.worker, tasks=p.tasks, fee_per_task=p.fee_per_task, amount=amount)

    compensation: uint256 = 0
    for s: Slash in slashes:
        assert s.amount > 0, "computemarket: zero slash"
        assert len(s.evidence_cid) > 0, "computemarket: no evidence"
        self._check_worker(s.worker, submitted_at)
        stake: uint256 = self._workers[s.worker].stake
        assert s.amount <= stake, "computemarket: slash above the stake"
        self._workers[s.worker].stake = stake - s.amount
        self._workers[s.worker].slashed += s.amount
        compensation += s.amount
        log WorkerSlashed(job_id=job_id, worker=s.worker, amount=s.amount, evidence_cid=s.evidence_cid)

    refunded: uint256 = budget - paid
    self._jobs[job_id].status = COMPLETED
    self._jobs[job_id].paid = paid
    self._jobs[job_id].refunded = refunded
    self._jobs[job_id].compensation = compensation
    self._jobs[job_id].checkpoint_digest = checkpoint_digest
    self._jobs[job_id].report_cid = report_cid
    self.total_held -= budget
    if refunded + compensation > 0:
        self.refunds[self._jobs[job_id].submitter] += refunded + compensation
    log JobCompleted(
        job_id=job_id,
        coordinator=msg.sender,
        paid=paid,
        refunded=refunded,
        compensation=compensation,
        checkpoint_digest=checkpoint_digest,
        report_cid=report_cid,
    )


@external
def expire_job(job_id: uint256):
    """
    @notice Closes a job not completed by its deadline and credits its
            whole budget back to the submitter. Anyone may call it.
    @param job_id The job id.
    """
    status: uint256 = self._job_status(job_id)
    assert status == OPEN or status == ACCEPTED, "computemarket: job closed"
    assert block.timestamp > self._jobs[job_id].deadline, "computemarket: deadline not passed"
    budget: uint256 = self._jobs[job_id].budget
    self._jobs[job_id].status = EXPIRED
    self._jobs[job_id].refunded = budget
    self.total_held -= budget
    self.refunds[self._jobs[job_id].submitter] += budget
    log JobExpired(job_id=job_id, refunded=budget)


@external
@view
def workers(worker: address) -> Worker:
    """
    @notice A worker's stake, minimum fee in effect now, unbonding time,
            whether it is active, and its lifetime tasks paid, earnings and
            stake slashed.
    @param worker The worker's address.
    @return Worker The worker (all zero if never registered).
    """
    bond: Bond = self._workers[worker]
    tally: uint256 = self._tallies[worker]
    return Worker(
        stake=bond.stake,
        min_fee=self._fee_at(worker, block.timestamp),
        unbonding_at=bond.unbonding_at,
        active=bond.active,
        tasks_paid=tally & _MASK64,
        earned=tally >> 64,
        slashed=bond.slashed,
    )


@external
@view
def pending_fee(worker: address) -> PendingFee:
    """
    @notice A fee raise the worker asked for and when it takes effect
            (all zero when none is pending).
    @param worker The worker's address.
    @return PendingFee The pending raise.
    """
    pending: PendingFee = self._pending_fees[worker]
    if pending.effective_at <= block.timestamp:
        return empty(PendingFee)
    return pending


@external
@view
def get_serving(job_id: uint256) -> Serving:
    """
    @notice A serving job's model, the version it serves and the fee per
            prediction (its escrow and state are in `get_job`).
    @param job_id The job id.
    @return Serving The serving terms.
    """
    self._job_status(job_id)
    assert self._jobs[job_id].rounds == 0, "computemarket: not a serving job"
    return self._servings[job_id]


@external
@view
def is_coordinator(key: address) -> bool:
    """
    @notice Whether a key may act as a coordinator now: registered and
            its measurement still allow-listed.
    @param key The coordinator's address.
    @return bool True when it may act.
    """
    return self._is_coordinator(key)


@external
@view
def coordinators(key: address) -> Coordinator:
    """
    @notice A coordinator's registered measurement, evidence CID and
            registration time (all zero if not registered).
    @param key The coordinator's address.
    @return Coordinator The record.
    """
    return self._coordinators[key]


@external
@view
def job_count() -> uint256:
    """
    @notice Number of jobs; ids run from 1 to this number.
    @return uint256 The job count.
    """
    return self._job_count


@external
@view
def get_job(job_id: uint256) -> Job:
    """
    @notice A job's terms, state (1 open, 2 accepted, 3 completed,
            4 expired), money and result.
    @param job_id The job id.
    @return Job The job.
    """
    self._job_status(job_id)
    return self._jobs[job_id]


@internal
@view
def _check_owner():
    assert msg.sender == ownable.owner, "computemarket: not the owner"


@internal
@view
def _is_coordinator(key: address) -> bool:
    record: Coordinator = self._coordinators[key]
    return record.registered_at != 0 and self.allowed_measurements[record.measurement]


@internal
@view
def _check_coordinator(key: address):
    assert self._is_coordinator(key), "computemarket: not an allow-listed coordinator"


@internal
@view
def _job_status(job_id: uint256) -> uint256:
    status: uint256 = self._jobs[job_id].status
    assert status != 0, "computemarket: unknown job"
    return status


@internal
@view
def _check_worker(worker: address, submitted_at: uint256):
    # a worker that began leaving before the job was submitted took no part
    # in it; one that began later is still bonded until the deadline
    if not self._workers[worker].active:
        unbonding_at: uint256 = self._workers[worker].unbonding_at
        assert unbonding_at != 0, "computemarket: not a registered worker"
        assert unbonding_at - unbonding_delay >= submitted_at, "computemarket: worker left before the job"


@internal
@view
def _fee_at(worker: address, at: uint256) -> uint256:
    pending: PendingFee = self._pending_fees[worker]
    if pending.effective_at != 0 and at >= pending.effective_at:
        return pending.fee
    return self._workers[worker].min_fee
