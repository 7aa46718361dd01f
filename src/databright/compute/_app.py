"""The coordinator's HTTP API: signed worker endpoints and public status endpoints.

Workers (``/v1/workers``, ``/v1/claim``, ``/v1/leases/…``, ``/v1/blobs/…``,
``/v1/stages/…`` for the stages of split jobs) must
sign every request (:mod:`._requests`); the body is read once, its digest
checked against the signature and the nonce spent before anything else runs.
A claim whose body is ``{"with_blobs": true}`` gets the lease and the blobs it
names in one framed response (as ``POST /v1/blobs`` frames them, the lease's
JSON first), which saves the worker a round trip per task.
Results travel as ``application/octet-stream`` safetensors; in optimistic
tasks a signed commitment comes first and the worker polls for challenges and
answers them (``/v1/leases/{id}/commitment``, ``…/challenges``, see
:mod:`._optimistic`). Status endpoints
(``/v1/status/…``) are read-only JSON for the dashboard and the CLI.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

import pydantic_core
from fastapi import BackgroundTasks, Depends, FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from databright.compute._coordinator import Coordinator
from databright.compute._requests import SignedRequest
from databright.compute._serving import ServingDesk
from databright.compute._serving_app import serving_router
from databright.compute._stage_worker import StageTask
from databright.compute._status import exposure_ledger, job_status, jobs_status, workers_status
from databright.errors import DataBrightError, InputError, NotFound, RequestError

__all__ = ["coordinator_app"]


async def _signed(request: Request) -> tuple[SignedRequest, bytes]:
    body = await request.body()
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator.authenticate(request.method, request.url.path, body, request.headers), body


#: Most blobs one batch request may name.
MAX_BATCH = 4096

Signed = Annotated[tuple[SignedRequest, bytes], Depends(_signed)]
# Lease ids are SQL integers: a larger number names no lease (and would overflow the driver).
LeaseId = Annotated[int, Path(ge=0, le=2**63 - 1)]
_WEI = re.compile(r"[0-9]{1,78}")
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


def _compute_seconds(header: str | None) -> float | None:
    """The worker's own measure of its compute time: a plain decimal number, or nothing."""
    if header is None or not _SECONDS.fullmatch(header):
        return None
    seconds = float(header)
    return seconds if math.isfinite(seconds) else None


def _json_body(body: bytes) -> Any:
    """A worker's JSON body. Not ``json.loads``: under py-evm's raised recursion limit deep nesting
    overflows the C stack and kills the process; this parser refuses nesting past a fixed depth."""
    try:
        return pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError:
        raise InputError("the request body is not JSON (or nests too deep)") from None


def _frames(parts: list[bytes]) -> bytes:
    """Each part as an 8-byte big-endian length, then its bytes."""
    return b"".join(len(b).to_bytes(8, "big") + b for b in parts)


def _with_blobs(body: bytes) -> bool:
    try:
        return body != b"" and _json_body(body).get("with_blobs") is True
    except (ValueError, AttributeError):
        raise InputError('a claim body is empty or JSON {"with_blobs": true}') from None


def coordinator_app(coordinator: Coordinator, serving: ServingDesk | None = None) -> FastAPI:
    app = FastAPI(title="DataBright coordinator", version="1")
    app.state.coordinator = coordinator
    if serving is not None:
        app.include_router(serving_router(serving))

    @app.exception_handler(DataBrightError)
    async def _error(_request: Request, exc: DataBrightError) -> JSONResponse:
        code = 403 if isinstance(exc, RequestError) else 404 if isinstance(exc, NotFound) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # One line naming the field, without echoing the (untrusted) input back.
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return JSONResponse({"detail": f"invalid {where}: {first.get('msg', 'malformed')}"}, status_code=422)

    @app.post("/v1/workers")
    def register(auth: Signed) -> dict[str, Any]:
        request, body = auth
        data = _json_body(body)
        fee = data.get("min_fee") if isinstance(data, dict) else None
        # Wei as a JSON integer or, as workers send it so no client rounds it, a string of decimal digits.
        if isinstance(fee, str) and _WEI.fullmatch(fee):
            fee = int(fee)
        if type(fee) is not int or "fingerprint" not in data:
            raise InputError("registration needs a JSON object with fingerprint and min_fee (wei, an integer)")
        return coordinator.register_worker(request.worker, data["fingerprint"], fee)

    @app.post("/v1/claim", response_model=None)
    def claim(auth: Signed) -> Response | dict[str, Any]:
        with_blobs = _with_blobs(auth[1])
        lease = coordinator.claim(auth[0])
        if lease is None:
            return Response(status_code=204)
        out = {"lease": lease.id, "expires_at": lease.expires_at, "task": json.loads(lease.task.to_json())}
        if lease.commit_every:  # optimistically verified: commit every k steps (docs/compute.md)
            out["commit_every"] = lease.commit_every
        if not with_blobs:
            return out
        # The lease just granted names these blobs; a stage fetches its own piece later.
        cids = [] if isinstance(lease.task, StageTask) else sorted(lease.task.blobs)
        return Response(_frames([json.dumps(out).encode(), *(coordinator.store.get(c) for c in cids)]),
                        media_type="application/octet-stream")

    @app.post("/v1/leases/{lease_id}/heartbeat")
    def heartbeat(lease_id: LeaseId, auth: Signed) -> dict[str, float]:
        return {"expires_at": coordinator.heartbeat(auth[0].worker, lease_id)}

    @app.get("/v1/blobs/{cid}")
    def blob(cid: str, auth: Signed) -> Response:
        return Response(coordinator.blob(auth[0].worker, cid), media_type="application/octet-stream")

    @app.post("/v1/blobs")
    def blobs(auth: Signed) -> Response:
        """Several blobs in one response: each as an 8-byte big-endian length, then its bytes."""
        data = _json_body(auth[1])
        cids = data.get("cids") if isinstance(data, dict) else None
        if not isinstance(cids, list) or not all(isinstance(c, str) for c in cids) or len(cids) > MAX_BATCH:
            raise InputError(f"a blob batch is JSON {{\"cids\": [...]}}, a list of at most {MAX_BATCH} strings")
        return Response(_frames(coordinator.blobs(auth[0].worker, cids)), media_type="application/octet-stream")

    @app.post("/v1/leases/{lease_id}/result")
    def result(lease_id: LeaseId, auth: Signed, request: Request) -> dict[str, str]:
        compute_s = _compute_seconds(request.headers.get("X-DataBright-Compute-Seconds"))
        return {"task": coordinator.submit(auth[0], lease_id, auth[1], compute_s)}

    @app.post("/v1/leases/{lease_id}/commitment")
    def commitment(lease_id: LeaseId, auth: Signed) -> dict[str, Any]:
        return coordinator.optimistic.commit(auth[0], lease_id, auth[1])

    @app.get("/v1/leases/{lease_id}/challenges")
    def challenges(lease_id: LeaseId, auth: Signed) -> dict[str, Any]:
        return coordinator.optimistic.challenges(auth[0].worker, lease_id)

    @app.post("/v1/leases/{lease_id}/challenges/{leaf}")
    def answer(lease_id: LeaseId, leaf: LeaseId, auth: Signed, background: BackgroundTasks) -> dict[str, Any]:
        answered = coordinator.optimistic.answer(auth[0], lease_id, leaf, auth[1])
        if answered["complete"]:  # re-execute after responding: the worker need not wait for it
            background.add_task(coordinator.optimistic.check, lease_id)
        return answered

    # Split jobs: a stage reports where it listens, learns its neighbours, or reports a broken channel.
    @app.post("/v1/stages/{lease_id}/listen")
    def stage_listen(lease_id: LeaseId, auth: Signed) -> dict[str, str]:
        _json_body(auth[1])  # refused here if it nests too deep for the parser behind it
        return coordinator.split.listen(auth[0], lease_id, auth[1])

    @app.post("/v1/stages/{lease_id}/peers", response_model=None)
    def stage_peers(lease_id: LeaseId, auth: Signed) -> Response | dict[str, Any]:
        peers = coordinator.split.peers(auth[0], lease_id)
        return Response(status_code=204) if peers is None else peers

    @app.post("/v1/stages/{lease_id}/abort")
    def stage_abort(lease_id: LeaseId, auth: Signed) -> dict[str, str]:
        _json_body(auth[1])
        return coordinator.split.abort(auth[0], lease_id, auth[1])

    @app.get("/v1/status/jobs")
    def jobs() -> list[dict[str, Any]]:
        return jobs_status(coordinator.engine)

    @app.get("/v1/status/jobs/{job_id}")
    def job(job_id: int) -> dict[str, Any]:
        status = job_status(coordinator.engine, job_id)
        status["waiting"] = coordinator.waiting(job_id)
        return status

    @app.get("/v1/status/workers")
    def workers() -> list[dict[str, Any]]:
        return workers_status(coordinator.engine)

    @app.get("/v1/status/exposure/{dataset_id}")
    def exposure(dataset_id: int) -> list[dict[str, Any]]:
        return exposure_ledger(coordinator.engine, dataset_id)

    return app
