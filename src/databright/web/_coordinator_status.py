"""A coordinator's public status, read by the dashboard for the compute pages.

Rounds and the exposure ledger live in the coordinator's database, not on-chain,
so the pages ask the coordinator the operator named (``serve --coordinator
URL``); a visitor never chooses where the dashboard connects. The answers are
untrusted JSON: every field a page shows is checked for its type and bounded
(CIDs and addresses by pattern, texts by length), unknown fields are ignored, so
a coordinator newer than this dashboard still shows what both know. A
coordinator that is down, slow, or answers garbage gives a one-line reason
("coordinator unreachable: …"), never an error page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import httpx
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "CoordinatorJob",
    "CoordinatorReply",
    "CoordinatorRound",
    "ExposureEntry",
    "StatusReader",
]

M = TypeVar("M", bound=BaseModel)

#: Seconds for one status request: a page waits at most this long for a coordinator that hangs.
TIMEOUT_S = 2.0
#: Most bytes one status answer may have (an exposure ledger lists item CIDs, so it is the largest).
MAX_ANSWER = 8 * 1024 * 1024

Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
Cid = Annotated[str, Field(pattern=r"^[a-z0-9]{1,120}$")]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
Text = Annotated[str, Field(max_length=400)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class CoordinatorRound(_Strict):
    round: Count
    tasks: Count
    accepted: Count
    checkpoint: Cid | None = None


class CoordinatorJob(_Strict):
    """What a coordinator says of one job (``GET /v1/status/jobs/{id}``); fields it does not send stay empty."""

    job_id: Count
    status: Annotated[str, Field(pattern=r"^[a-z_ -]{1,40}$")]
    round: Count = 0
    rounds: Count = 0
    cap_items: Count | None = None
    slashes: Count = 0
    score: float | None = None
    report: Cid | None = None
    checkpoint: Cid | None = None
    waiting: Text | None = None
    round_detail: Annotated[list[CoordinatorRound], Field(max_length=100_000)] = []

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("score must be finite")
        return value

    @property
    def rounds_done(self) -> int:
        """Rounds whose every task was accepted (the coordinator has averaged them, or is about to)."""
        return sum(1 for r in self.round_detail if r.tasks and r.accepted >= r.tasks)


class ExposureEntry(_Strict):
    """One worker's line of a dataset's exposure ledger: distinct items it has been sent, against the cap."""

    worker: Address
    items: Count
    cap_items: Count | None = None

    @property
    def fraction(self) -> float:
        """Share of the cap used, for a bar (1.0 when over it)."""
        return min(1.0, self.items / self.cap_items) if self.cap_items else 0.0


@dataclass(frozen=True)
class CoordinatorReply:
    """The status pages need from a coordinator, or why it is missing (``error``)."""

    url: str | None
    jobs: dict[int, CoordinatorJob | None] = field(default_factory=dict)  # None: the coordinator has no such job
    exposure: list[ExposureEntry] | None = None
    error: str | None = None

    @property
    def named(self) -> bool:
        return self.url is not None


class _Unreachable(Exception):
    pass


class StatusReader:
    """Reads one coordinator's status endpoints with short timeouts and a bounded answer size."""

    def __init__(self, url: str | None, *, timeout: float = TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/") if url else None
        self._timeout = timeout
        self._transport = transport

    def read(self, job_ids: Iterable[int] = (), exposure_of: int | None = None) -> CoordinatorReply:
        """The coordinator's view of ``job_ids`` and, if asked, the exposure ledger of dataset ``exposure_of``."""
        if self.url is None:
            return CoordinatorReply(None)
        jobs: dict[int, CoordinatorJob | None] = {}
        try:
            with httpx.Client(base_url=self.url, timeout=self._timeout, transport=self._transport,
                              follow_redirects=False) as client:
                for job_id in job_ids:
                    answer = self._get(client, f"/v1/status/jobs/{int(job_id)}", missing_ok=True)
                    job = None if answer is None else self._parse(CoordinatorJob, answer, "job status")
                    if job is not None and job.job_id != job_id:
                        raise _Unreachable(f"it answered for another job than {job_id}")
                    jobs[job_id] = job
                exposure = None
                if exposure_of is not None:
                    answer = self._get(client, f"/v1/status/exposure/{int(exposure_of)}", missing_ok=False)
                    if not isinstance(answer, list) or len(answer) > 100_000:
                        raise _Unreachable("its exposure ledger is not a list of workers")
                    exposure = [self._parse(ExposureEntry, row, "exposure ledger") for row in answer]
        except _Unreachable as exc:
            return CoordinatorReply(self.url, jobs, None, f"coordinator unreachable: {exc}")
        return CoordinatorReply(self.url, jobs, exposure)

    def _get(self, client: httpx.Client, path: str, *, missing_ok: bool) -> Any:
        try:
            with client.stream("GET", path, headers={"Accept": "application/json"}) as reply:
                if reply.status_code == 404 and missing_ok:
                    return None
                if reply.status_code != 200:
                    raise _Unreachable(f"{path} answered HTTP {reply.status_code}")
                body = bytearray()
                for chunk in reply.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise _Unreachable(f"{path} answered more than {MAX_ANSWER // 2**20} MiB")
        except httpx.TimeoutException:
            raise _Unreachable(f"no answer within {self._timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _Unreachable(type(exc).__name__) from None
        try:
            # Not json.loads: py-evm raises the recursion limit so high that deep nesting overflows the C
            # stack instead of raising; this parser stops at a fixed depth.
            return pydantic_core.from_json(bytes(body), allow_inf_nan=False)
        except ValueError:
            raise _Unreachable(f"{path} did not answer JSON") from None

    @staticmethod
    def _parse(model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            # Field names only: the values are the coordinator's and are not repeated on a page.
            where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "its answer"
            raise _Unreachable(f"its {what} is malformed ({where})") from None
