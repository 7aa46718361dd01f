"""A serving job's coordinator and N logical serving workers on this machine, for ``model serve --workers``.

The coordinator key (``operator``) and the workers' keys and stakes are the
same as for ``train --on-market --workers`` (:mod:`._compute_local`). The
first ``byzantine`` workers answer every request with its least probable class:
the cheat a redundancy group catches. Chain calls happen only on the caller's
thread (:meth:`LocalServing.poll`, :meth:`LocalServing.settle`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from databright.cli._compute_local import LocalCompute
from databright.errors import InputError

__all__ = ["LocalServing", "ServingOptions", "start_serving", "submit_serving"]


def submit_serving(ws: Any, owner: Any, model_id: int, *, fee: int, redundancy: int, budget: int,
                   deadline_s: int) -> int:
    """As the model's owner, escrow a serving budget on chain; returns the job id."""
    from databright.cli._common import require_funds

    cm, mm = ws.compute_market, ws.model_market
    if cm.model_market_address() is None:
        raise InputError("ComputeMarket serves no ModelMarket yet: its owner must deploy it again or set it")
    if mm.model(model_id).owner != owner.address:
        raise InputError(f"model {model_id} is not owned by {owner.address}; pass the owner's --account")
    require_funds(ws, owner.address, budget, "the serving budget")
    now = int(ws.ledger.w3.eth.get_block("latest")["timestamp"])
    deadline = now + min(deadline_s, cm.unbonding_delay() - 60)
    return int(cm.submit_serving(owner, model_id, fee_per_prediction=fee, redundancy=redundancy, budget=budget,
                                 deadline=deadline))


def _lying_worker() -> type:
    from databright.compute import Answer, ServingWorker

    class Lying(ServingWorker):
        """Answers with the least probable class, consistently signed: only its group can tell."""

        def respond(self, lease: dict[str, Any]) -> Any:
            honest = super().respond(lease)
            flipped = np.ascontiguousarray(honest.probabilities[:, ::-1])
            classes = lease["spec"]["classes"]
            labels = tuple(str(classes[int(np.argmax(row))]) for row in flipped)
            return Answer(honest.request, honest.input_sha256, labels, flipped)

    return Lying


class LocalServing(LocalCompute):
    """A coordinator serving one job's prediction requests, with ``workers`` logical workers on loopback."""

    def start(self) -> LocalServing:
        from databright.compute import ServingDesk, ServingLink
        from databright.compute._app import coordinator_app

        owner, keys, domain = self._prepare()
        self.desk = ServingDesk(self.engine, self.ws.store, domain)
        self.serving_link = ServingLink(self.desk, self.ws.compute_market, self.ws.model_market, owner)
        self._serve(coordinator_app(self.coordinator, self.desk), keys, domain)
        return self

    def _work(self, domain: Any, keys: list[bytes]) -> None:
        import httpx

        from databright.compute import RequestSigner, ServingWorker, fingerprint, run_serving_workers

        lying = _lying_worker()
        while not self._server.started and not self._stop.is_set():
            self._stop.wait(0.05)
        env = fingerprint().as_dict()
        with httpx.Client(base_url=self.url, timeout=60.0) as client:
            workers = [(lying if i < self.byzantine else ServingWorker)(client, RequestSigner(domain, k), env,
                                                                        self.min_fee) for i, k in enumerate(keys)]
            run_serving_workers(workers, self._stop)

    def poll(self) -> None:
        """Accept new serving jobs; raise what a thread died of."""
        self._raise_failure()
        self.serving_link.poll()

    def _raise_failure(self) -> None:
        from databright.errors import ComputeError, DataBrightError

        if self._failure is not None:
            if isinstance(self._failure, DataBrightError):
                raise self._failure
            raise ComputeError(f"local serving stopped: {self._failure}")

    def settle(self, job_id: int) -> str:
        return self.serving_link.settle(job_id)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._server.started:
            self._raise_failure()
            if time.monotonic() > deadline:
                raise InputError("the local coordinator did not start")
            self._stop.wait(0.05)


@dataclass(frozen=True)
class ServingOptions:
    """How ``model serve`` has its predictions answered: by itself (no workers, no coordinator) or by workers."""

    workers: int | None
    coordinator: str | None
    serving_job: int | None
    operator: str | None
    fee: int
    budget: int
    redundancy: int
    byzantine: int = 0

    def check(self) -> None:
        if self.workers is not None and self.coordinator is not None:
            raise InputError("--workers runs a coordinator here; --coordinator names one elsewhere: pass one")
        if self.coordinator is not None and self.serving_job is None:
            raise InputError("--coordinator needs --serving-job ('databright compute serving submit' prints it)")
        if self.workers is None and self.coordinator is None and (self.serving_job or self.byzantine):
            raise InputError("--serving-job needs --workers or --coordinator")
        if self.redundancy not in (1, 3):
            raise InputError(f"--redundancy is 1 or 3, got {self.redundancy}")
        if self.byzantine < 0 or (self.workers is not None and self.byzantine > self.workers):
            raise InputError("--byzantine counts some of the --workers")


def start_serving(ws: Any, owner: Any, served: Any, options: ServingOptions) -> tuple[LocalServing | None, Any, int | None]:
    """The local coordinator (if any), the prediction backend (None: the server runs the model) and the job."""
    import httpx

    from databright.compute import RequestDomain, RequestSigner, ServingClient

    options.check()
    if options.workers is None and options.coordinator is None:
        return None, None, None
    cm = ws.compute_market
    job_id = options.serving_job
    if job_id is None:
        job_id = submit_serving(ws, owner, served.model_id, fee=options.fee, redundancy=options.redundancy,
                                budget=options.budget, deadline_s=86_400)
    terms = cm.serving(job_id)
    if (terms.model_id, terms.version) != (served.model_id, served.version):
        raise InputError(f"serving job {job_id} serves model {terms.model_id} version {terms.version}, "
                         f"not model {served.model_id} version {served.version}")
    local = None
    url = options.coordinator
    if options.workers is not None:
        operator = ws.signer(options.operator) if options.operator else owner
        local = LocalServing(ws, options.workers, operator=operator, byzantine=options.byzantine).start()
        local.wait_ready()
        local.poll()
        url = local.url
    assert url is not None
    signer = RequestSigner(RequestDomain(ws.ledger.chain_id, cm.address), bytes(owner.key))
    backend = ServingClient(httpx.Client(base_url=url, timeout=60.0), signer, job_id, served.spec.classes)
    return local, backend, job_id
