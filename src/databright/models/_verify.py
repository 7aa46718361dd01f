"""The dataset evaluator's check of a registered model version, and the score it posts.

The evaluator scores the registered checkpoint (digest checked) on the
dataset's validation split and re-runs the training report bit for bit. The
verification report — the score, whether training reproduced, and every
problem found — goes to the blob store and its CID on-chain with the score.
A version whose training report does not reproduce its registered checkpoint
(another checkpoint, other data, another validation split, not reproducible),
or whose checkpoint cannot even read the validation split,
cannot be trusted to have been trained on the dataset as claimed: it is
posted with score 0 and the report says why, so rankings put it last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from databright.chain.modelmarket import ModelMarket
from databright.errors import DataBrightError, InputError
from databright.models._served import ServedModel
from databright.models._training import load_training_report, score_checkpoint, verify_training
from databright.storage import BlobStore, canonical_json, cid_from_digest, digest_of_cid

__all__ = ["VERIFICATION_KIND", "ModelVerification", "verify_model"]

VERIFICATION_KIND = "databright.verification"


@dataclass(frozen=True)
class ModelVerification:
    model_id: int
    version: int
    score: float  # measured validation accuracy of the registered checkpoint
    score_ppm: int  # what was posted: the score, or 0 when a problem was found
    reproduced: bool
    problems: tuple[str, ...]
    report_cid: str

    @property
    def reason(self) -> str:
        return "; ".join(self.problems) if self.problems else "training reproduced bitwise"


def _training_problems(store: BlobStore, report_cid: str, dataset_id: int, checkpoint: str,
                       validation: str) -> tuple[bool, list[str]]:
    try:
        report = load_training_report(store, report_cid)
    except DataBrightError as exc:
        return False, [f"training report unreadable: {exc}"]
    problems = []
    if int(report.get("dataset_id", -1)) != dataset_id:
        problems.append(f"training report is for dataset {report.get('dataset_id')}, not {dataset_id}")
    if report.get("checkpoint") != checkpoint:
        problems.append(f"training report made checkpoint {report.get('checkpoint')}, not the registered {checkpoint}")
    if report.get("validation") != validation:
        problems.append("training report scored on another validation split than the dataset's")
    try:
        reproduced = verify_training(store, report_cid)
    except DataBrightError as exc:
        return False, [*problems, f"training cannot be re-run: {exc}"]
    if not reproduced:
        problems.append("re-running the training report gave another checkpoint or score")
    return reproduced, problems


def verify_model(market: ModelMarket, store: BlobStore, signer: LocalAccount, model_id: int, version: int | None,
                 validation: str, *, post: bool = True) -> ModelVerification:
    """Verify one model version (default: the latest) and, with ``post``, post the score on-chain.

    Refuses (InputError) what the contract would refuse: another account than
    the dataset's evaluator, a version already verified, a checkpoint that is
    not in the store or not the registered one.
    """
    served = ServedModel.load(market, store, model_id, version)
    if market.verification(model_id, served.version).verified:
        raise InputError(f"model {model_id} version {served.version} already has a verified score")
    registered = market.version(model_id, served.version)
    training = str(cid_from_digest(registered.report_digest))
    reproduced, problems = _training_problems(store, training, served.dataset_id, served.checkpoint_cid, validation)
    try:
        score = score_checkpoint(store, served.spec, served.state, validation)
    except DataBrightError as exc:  # a spec that cannot read the dataset's items
        score = 0.0
        problems.append(f"the checkpoint cannot be scored on the dataset's validation split: {exc}")
    posted = 0 if problems else round(score * 1_000_000)
    report: dict[str, Any] = {
        "kind": VERIFICATION_KIND, "version": 1, "model_id": model_id, "model_version": served.version,
        "dataset_id": served.dataset_id, "checkpoint": served.checkpoint_cid, "validation": validation,
        "score": score, "score_ppm": posted, "claimed_score_ppm": registered.claimed_score,
        "training_report": training, "training_reproduced": reproduced, "problems": problems,
    }
    report_cid = str(store.put(canonical_json(report)))
    if post:
        market.post_verified_score(signer, model_id, served.version, posted, digest_of_cid(report_cid))
    return ModelVerification(model_id, served.version, score, posted, reproduced, tuple(problems), report_cid)
