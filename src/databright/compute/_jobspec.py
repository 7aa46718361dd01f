"""The document a job's ``spec_cid`` names: the model spec and how the job is verified and split.

ComputeMarket records only the numbers a contract must check (rounds, local
steps, redundancy, exposure cap, budget); the rest of a job is data in the
content-addressed store, so it is fixed the moment the job is submitted. The
document is either a bare :class:`~databright.ml.ModelSpec` (a job verified by
its on-chain redundancy: three replicas agree, or one worker is trusted) or::

    {"kind": "databright.compute.job-spec", "version": 1,
     "model": {...ModelSpec...},
     "verification": "tmr" | "optimistic" | "none",
     "split": k,              # pieces the model is cut into, 1 = not split
     "snapshot_every": k,     # optimistic: steps per committed segment, 0 = coordinator's default
     "samples": s}            # optimistic: segments re-executed per task, 0 = coordinator's default

Optimistic verification and trusting one worker both run one replica, so they
need redundancy 1 on chain; triple modular redundancy needs 3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

import pydantic_core

from databright.errors import InputError
from databright.ml import ModelSpec
from databright.storage import canonical_json

__all__ = ["JOB_SPEC_KIND", "MAX_SPLIT", "JobSettings", "Verification", "parse_job_document"]

JOB_SPEC_KIND = "databright.compute.job-spec"
MAX_SPLIT = 8

Verification = Literal["tmr", "optimistic", "none"]
_VERIFICATIONS: tuple[Verification, ...] = ("tmr", "optimistic", "none")


@dataclass(frozen=True)
class JobSettings:
    """How a job's tasks are verified and whether its model is split across workers."""

    verification: Verification = "tmr"
    split: int = 1
    snapshot_every: int = 0
    samples: int = 0

    def __post_init__(self) -> None:
        if self.verification not in _VERIFICATIONS:
            raise InputError(f"verification is one of {', '.join(_VERIFICATIONS)}, got {self.verification!r}")
        if not 1 <= self.split <= MAX_SPLIT:
            raise InputError(f"split is between 1 and {MAX_SPLIT}, got {self.split}")
        if self.snapshot_every < 0 or self.samples < 0:
            raise InputError("snapshot_every and samples must be non-negative")
        if self.verification != "optimistic" and (self.snapshot_every or self.samples):
            raise InputError("snapshot_every and samples apply to optimistic verification only")
        if self.verification == "optimistic" and self.split > 1:
            # A stage holds one piece, so no worker could commit snapshots of the whole training state.
            raise InputError("a split job is verified by redundancy; optimistic verification needs split 1")

    @classmethod
    def for_redundancy(cls, redundancy: int) -> JobSettings:
        """What a bare model spec means: replicas agree when there are three, else one is trusted."""
        return cls("tmr" if redundancy == 3 else "none")

    def check_redundancy(self, redundancy: int) -> None:
        """Refuse settings the job's on-chain redundancy cannot carry out."""
        wanted = 3 if self.verification == "tmr" else 1
        if redundancy != wanted:
            raise InputError(f"{self.verification} verification needs redundancy {wanted}, the job has {redundancy}")

    @property
    def is_default(self) -> bool:
        """Whether a bare model spec says the same (so old documents and new ones mean one thing)."""
        return self.split == 1 and self.verification != "optimistic"

    def to_dict(self) -> dict[str, Any]:
        return {"verification": self.verification, "split": self.split, "snapshot_every": self.snapshot_every,
                "samples": self.samples}

    def to_json(self) -> str:
        return canonical_json(self.to_dict()).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> JobSettings:
        raw = _object(data, "job settings")
        return cls._from(raw)

    @classmethod
    def _from(cls, raw: dict[str, Any]) -> JobSettings:
        verification = raw.get("verification", "tmr")
        values = {k: raw.get(k, 0 if k != "split" else 1) for k in ("split", "snapshot_every", "samples")}
        if not isinstance(verification, str) or any(type(v) is not int for v in values.values()):
            raise InputError("job settings: verification is a string, split, snapshot_every and samples integers")
        return cls(cast(Verification, verification), values["split"], values["snapshot_every"], values["samples"])

    def document(self, spec: ModelSpec) -> bytes:
        """The job document for ``spec`` with these settings, as stored at the job's spec CID."""
        return canonical_json({"kind": JOB_SPEC_KIND, "version": 1, "model": json.loads(spec.to_json()),
                               **self.to_dict()})


def _object(data: str | bytes, what: str) -> dict[str, Any]:
    try:
        # Not json.loads: the document is anyone's, and under py-evm's raised recursion limit deep
        # nesting overflows the C stack instead of raising; this parser stops at a fixed depth.
        raw = pydantic_core.from_json(data)
    except ValueError:
        raise InputError(f"{what} is not JSON (or nests too deep)") from None
    if not isinstance(raw, dict):
        raise InputError(f"{what} is not a JSON object")
    return raw


def parse_job_document(data: str | bytes, redundancy: int) -> tuple[ModelSpec, JobSettings]:
    """The model spec and settings a job's spec blob gives, checked against its on-chain redundancy."""
    raw = _object(data, "job spec")
    if raw.get("kind") != JOB_SPEC_KIND:
        settings = JobSettings.for_redundancy(redundancy)
        return ModelSpec.from_json(json.dumps(raw)), settings
    extra = set(raw) - {"kind", "version", "model", "verification", "split", "snapshot_every", "samples"}
    if raw.get("version") != 1 or extra:
        raise InputError(f"job spec: unknown version or fields {sorted(extra) or raw.get('version')}")
    if not isinstance(raw.get("model"), dict):
        raise InputError("job spec: model is not an object")
    spec = ModelSpec.from_json(json.dumps(raw["model"]))
    settings = JobSettings._from(raw)
    settings.check_redundancy(redundancy)
    return spec, settings
