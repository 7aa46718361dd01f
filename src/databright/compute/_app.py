"""The coordinator's HTTP API: signed worker endpoints and public status endpoints.

Workers (``/v1/workers``, ``/v1/claim``, ``/v1/leases/…``, ``/v1/blobs/…``) must
sign every request (:mod:`._requests`); the body is read once, its digest
checked against the signature and the nonce spent before anything else runs.
Results travel as ``application/octet-stream`` safetensors. Status endpoints
(``/v1/status/…``) are read-only JSON for the dashboard and the CLI.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from databright.compute._coordinator import Coordinator
from databright.compute._requests import SignedRequest
from databright.compute._serving import ServingDesk
from databright.compute._serving_app import serving_router
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


def coordinator_app(coordinator: Coordinator, serving: ServingDesk | None = None) -> FastAPI:
    app = FastAPI(title="DataBright coordinator", version="1")
    app.state.coordinator = coordinator
    if serving is not None:
        app.include_router(serving_router(serving))

    @app.exception_handler(DataBrightError)
    async def _error(_request: Request, exc: DataBrightError) -> JSONResponse:
        code = 403 if isinstance(exc, RequestError) else 404 if isinstance(exc, NotFound) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.post("/v1/workers")
    def register(auth: Signed) -> dict[str, Any]:
        request, body = auth
        try:
            data = json.loads(body)
            return coordinator.register_worker(request.worker, data["fingerprint"], int(data["min_fee"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"registration needs JSON with fingerprint and min_fee ({exc})") from None

    @app.post("/v1/claim", response_model=None)
    def claim(auth: Signed) -> Response | dict[str, Any]:
        lease = coordinator.claim(auth[0])
        if lease is None:
            return Response(status_code=204)
        return {"lease": lease.id, "expires_at": lease.expires_at, "task": json.loads(lease.task.to_json())}

    @app.post("/v1/leases/{lease_id}/heartbeat")
    def heartbeat(lease_id: int, auth: Signed) -> dict[str, float]:
        return {"expires_at": coordinator.heartbeat(auth[0].worker, lease_id)}

    @app.get("/v1/blobs/{cid}")
    def blob(cid: str, auth: Signed) -> Response:
        return Response(coordinator.blob(auth[0].worker, cid), media_type="application/octet-stream")

    @app.post("/v1/blobs")
    def blobs(auth: Signed) -> Response:
        """Several blobs in one response: each as an 8-byte big-endian length, then its bytes."""
        try:
            cids = json.loads(auth[1])["cids"]
            if not isinstance(cids, list) or not all(isinstance(c, str) for c in cids) or len(cids) > MAX_BATCH:
                raise TypeError(f"cids must be a list of at most {MAX_BATCH} strings")
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"a blob batch is JSON {{\"cids\": [...]}} ({exc})") from None
        frames = b"".join(len(b).to_bytes(8, "big") + b for b in coordinator.blobs(auth[0].worker, cids))
        return Response(frames, media_type="application/octet-stream")

    @app.post("/v1/leases/{lease_id}/result")
    def result(lease_id: int, auth: Signed, request: Request) -> dict[str, str]:
        seconds = request.headers.get("X-DataBright-Compute-Seconds")
        compute_s = float(seconds) if seconds and seconds.replace(".", "", 1).isdigit() else None
        return {"task": coordinator.submit(auth[0], lease_id, auth[1], compute_s)}

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
