"""The compute market as the compute page shows it: workers and jobs folded from ComputeMarket's events.

Every change of a worker or a job is an event with its values (registration,
stake, fee, unbonding, payment per accepted task, slash with its evidence,
completion with the result's report), so the page's tables are a fold over the
contract's log from its deployment block. The fold is cached per chain head.
Rounds and the exposure ledger live in the coordinator's database, not on-chain
(:mod:`._coordinator_status`). How a job is verified and split is in the job
document at its spec CID, read from the blob store (:func:`job_document`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from databright.chain import DataMarket, compile_contract
from databright.compute import parse_job_document
from databright.errors import DataBrightError
from databright.web._state import WebState

__all__ = ["ComputeBook", "JobDocument", "JobView", "WorkerView", "compute_book", "job_document"]

_CACHE: dict[tuple[int, str], tuple[int, ComputeBook]] = {}
#: Largest job document the pages read: a model spec and four settings are a few kilobytes.
MAX_DOCUMENT = 256 * 1024
_VERIFICATION = {"tmr": "TMR", "optimistic": "optimistic", "none": "one worker"}


@dataclass
class WorkerView:
    address: str
    stake: int
    min_fee: int
    unbonding_at: int = 0
    left: bool = False
    tasks: int = 0
    earned: int = 0
    slashed: int = 0
    slashes: list[tuple[int, str]] = field(default_factory=list)  # (job, evidence CID)

    @property
    def state(self) -> str:
        if self.left:
            return "left"
        if self.unbonding_at:
            return "unbonding"
        return "active"


@dataclass
class JobView:
    job_id: int
    dataset_id: int
    submitter: str
    spec_cid: str
    rounds: int
    local_steps: int
    redundancy: int
    max_exposure_bps: int
    budget: int
    training_fee: int = 0  # paid to the dataset's shareholders on submission
    deadline: int = 0
    status: str = "waiting"  # waiting, running, completed, expired
    coordinator: str | None = None
    paid: int = 0
    refunded: int = 0
    report_cid: str | None = None
    checkpoint_digest: str | None = None
    workers: int = 0
    slashes: list[tuple[str, int, str]] = field(default_factory=list)  # (worker, amount, evidence CID)


@dataclass
class ComputeBook:
    address: str
    workers: dict[str, WorkerView] = field(default_factory=dict)
    jobs: dict[int, JobView] = field(default_factory=dict)

    def apply(self, name: str, a: dict[str, Any]) -> None:
        if name == "WorkerRegistered":
            self.workers[a["worker"]] = WorkerView(a["worker"], int(a["stake"]), int(a["min_fee"]))
        elif name == "StakeAdded":
            self.workers[a["worker"]].stake = int(a["stake"])
        elif name == "MinFeeChanged":
            self.workers[a["worker"]].min_fee = int(a["min_fee"])
        elif name == "UnbondingBegun":
            self.workers[a["worker"]].unbonding_at = int(a["unbonding_at"])
        elif name == "StakeWithdrawn":
            # Kept, with its history: a worker that left still shows what it earned and lost.
            self.workers[a["worker"]].left, self.workers[a["worker"]].stake = True, 0
        elif name == "JobSubmitted":
            self.jobs[int(a["job_id"])] = JobView(
                int(a["job_id"]), int(a["dataset_id"]), a["submitter"], str(a["spec_cid"]), int(a["rounds"]),
                int(a["local_steps"]), int(a["redundancy"]), int(a["max_exposure_bps"]), int(a["budget"]),
                int(a["training_fee"]), int(a["deadline"]))
        elif name == "ServingSubmitted":  # a model's predictions answered by workers: no training fee
            self.jobs[int(a["job_id"])] = JobView(
                int(a["job_id"]), 0, a["submitter"], f"serving model {int(a['model_id'])}", 0, 0,
                int(a["redundancy"]), 0, int(a["budget"]), 0, int(a["deadline"]))
        elif name == "JobAccepted":
            job = self.jobs[int(a["job_id"])]
            job.status, job.coordinator = "running", a["coordinator"]
        elif name == "WorkerPaid":
            worker = self.workers.get(a["worker"])
            if worker is not None:
                worker.tasks += int(a["tasks"])
                worker.earned += int(a["amount"])
            self.jobs[int(a["job_id"])].workers += 1
        elif name == "WorkerSlashed":
            worker = self.workers.get(a["worker"])
            if worker is not None:
                worker.slashed += int(a["amount"])
                worker.stake -= int(a["amount"])
                worker.slashes.append((int(a["job_id"]), str(a["evidence_cid"])))
            slashed_in = self.jobs.get(int(a["job_id"]))
            if slashed_in is not None:
                slashed_in.slashes.append((a["worker"], int(a["amount"]), str(a["evidence_cid"])))
        elif name == "JobCompleted":
            job = self.jobs[int(a["job_id"])]
            job.status, job.paid, job.refunded = "completed", int(a["paid"]), int(a["refunded"])
            job.report_cid, job.checkpoint_digest = str(a["report_cid"]), "0x" + bytes(a["checkpoint_digest"]).hex()
        elif name == "JobExpired":
            job = self.jobs[int(a["job_id"])]
            job.status, job.refunded = "expired", int(a["refunded"])


def compute_book(state: WebState) -> ComputeBook | None:
    """The compute market's workers and jobs, or None while ComputeMarket is not deployed on this chain."""
    entry = state.ws.deployment.contracts.get("ComputeMarket")
    if not entry:
        return None
    ledger = state.ws.ledger
    head = ledger.block_number()
    key = (id(state), str(entry["address"]))
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == head:
        return cached[1]
    abi = compile_contract("compute_market", state.ws.home.cache).abi
    # DataMarket's client decodes any contract's events from the ABI it is given.
    reader = DataMarket(ledger, str(entry["address"]), abi)
    book = ComputeBook(reader.address)
    for event in reader.events(int(entry.get("block", 0)), head):
        book.apply(event.name, event.args)
    _CACHE[key] = (head, book)
    return book


@dataclass(frozen=True)
class JobDocument:
    """What a job's spec CID says beyond the chain's numbers: verification, split, the model's kind."""

    verification: str | None = None  # "TMR", "optimistic", "one worker"; None if unreadable
    split: int = 1
    snapshot_every: int = 0
    samples: int = 0
    model: str | None = None
    problem: str | None = None  # why the document could not be read


_DOCUMENTS: dict[tuple[str, int], JobDocument] = {}


def job_document(state: WebState, job: JobView) -> JobDocument:
    """The job document at ``job.spec_cid``, parsed as the coordinator parses it (cached: a CID never
    changes; a document not in the store yet is looked for again next time)."""
    key = (job.spec_cid, job.redundancy)
    if key in _DOCUMENTS:
        return _DOCUMENTS[key]
    if not state.ws.store.has(job.spec_cid):
        return JobDocument(problem="the job document is not in this dashboard's blob store")
    document = _DOCUMENTS[key] = _read_document(state, job)
    return document


def _read_document(state: WebState, job: JobView) -> JobDocument:
    store = state.ws.store
    try:
        if store.size(job.spec_cid) > MAX_DOCUMENT:
            return JobDocument(problem=f"the job document is larger than {MAX_DOCUMENT // 1024} KiB")
        spec, settings = parse_job_document(store.get(job.spec_cid), job.redundancy)
    except DataBrightError as exc:
        # One line, bounded: the message may quote the (untrusted) document's field names.
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return JobDocument(problem=f"the job document is unreadable: {reason}")
    return JobDocument(_VERIFICATION[settings.verification], settings.split, settings.snapshot_every,
                       settings.samples, str(spec.kind))
