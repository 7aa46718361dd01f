"""The coordinator's serving endpoints, a router mounted beside the training API.

``POST /v1/serving/jobs/{job}/predict`` is the model owner's (its server's)
request: framed items (:func:`frame_items`), signed with the owner's key in
the same EIP-712 headers workers use; it answers once the workers agree (or
the coordinator has answered itself). Workers sign ``POST /v1/serving/claim``
(a long poll: JSON ``{"wait": seconds}``, 204 when nothing came),
``GET /v1/serving/blobs/{cid}`` (the model checkpoint of a job they serve) and
``POST /v1/serving/answers/{id}`` (their answer, canonical JSON).
``GET /v1/serving/jobs/{job}`` is public status.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from databright.compute._requests import SignedRequest
from databright.compute._serving import ServingDesk
from databright.compute._serving_answers import unframe_items
from databright.errors import InputError

__all__ = ["serving_router"]


async def _signed(request: Request) -> tuple[SignedRequest, bytes]:
    # the coordinator checks the signature and spends the nonce, for owners and workers alike
    body = await request.body()
    return request.app.state.coordinator.authenticate(request.method, request.url.path, body, request.headers), body


Signed = Annotated[tuple[SignedRequest, bytes], Depends(_signed)]


def serving_router(desk: ServingDesk) -> APIRouter:
    """The serving routes of ``desk``, for an app whose ``state.coordinator`` authenticates requests."""
    router = APIRouter(prefix="/v1/serving")

    @router.post("/jobs/{job_id}/predict")
    async def predict(job_id: int, auth: Signed) -> dict[str, Any]:
        items = unframe_items(auth[1])
        return await run_in_threadpool(desk.predict, auth[0], job_id, items)

    @router.get("/jobs/{job_id}")
    def status(job_id: int) -> dict[str, Any]:
        return desk.status(job_id)

    @router.post("/claim", response_model=None)
    async def claim(auth: Signed) -> Response | dict[str, Any]:
        try:
            wait = float(pydantic_core.from_json(auth[1] or b"{}").get("wait", 0))  # nesting-bounded
        except (ValueError, AttributeError, TypeError) as exc:
            raise InputError(f'a serving claim is JSON {{"wait": seconds}} ({exc})') from None
        lease = await run_in_threadpool(desk.claim, auth[0], wait)
        if lease is None:
            return Response(status_code=204)
        return {"answer": lease.answer_id, "request": lease.request_id, "job": lease.job_id,
                "spec": json.loads(lease.spec.to_json()), "checkpoint": lease.checkpoint_cid,
                "checkpoint_sha256": lease.checkpoint_sha256, "input_sha256": lease.input_sha256,
                "items": [base64.b64encode(item).decode() for item in lease.items], "expires_at": lease.expires_at}

    @router.get("/blobs/{cid}")
    def blob(cid: str, auth: Signed) -> Response:
        return Response(desk.checkpoint(auth[0].worker, cid), media_type="application/octet-stream")

    @router.post("/answers/{answer_id}")
    def answer(answer_id: int, auth: Signed) -> dict[str, str]:
        return {"request": desk.answer(auth[0], answer_id, auth[1])}

    return router
