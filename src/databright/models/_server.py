"""The prediction server: one registered model behind an HTTP API.

``POST /v1/models/{id}/predict`` takes image files (multipart, field
``files``) or table rows (JSON ``{"rows": [...]}``) and answers with one
prediction per item. Unless the model is free, the request carries a voucher
(header ``X-Payment-Voucher: channel:amount:0xsignature``, or a ``voucher``
form or JSON field) whose cumulative amount adds at least ``price × items`` to
the channel's latest voucher. Inputs are checked first, so bad input is a 4xx
and costs nothing; the voucher is then stored durably, and only then does the
model run and the server answer. A missing or short voucher gets ``402`` with
what is owed; ``GET /v1/models/{id}`` says the price and the EIP-712 domain to
sign vouchers in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pydantic_core
from numpy.typing import NDArray
from starlette.concurrency import run_in_threadpool

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from databright.errors import ChainError, ComputeError, InputError, PaymentError
from databright.models._payments import PaymentGate, Redeemer
from databright.models._served import ServedModel
from databright.models._voucher import DOMAIN_NAME, DOMAIN_VERSION, Voucher
from databright.models._voucher_store import PaymentRequired
from databright.storage import canonical_json

__all__ = ["VOUCHER_HEADER", "Backend", "create_app"]

#: Runs the model elsewhere (compute-market workers): stored-item bytes -> class probabilities.
Backend = Callable[[Sequence[bytes]], NDArray[np.float32]]

VOUCHER_HEADER = "X-Payment-Voucher"
MAX_ITEMS = 256
MAX_BODY = 32 * 1024 * 1024


class PredictionOut(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]


class PaymentOut(BaseModel):
    channel: int
    amount: int
    cost: int


class PredictResponse(BaseModel):
    model_id: int
    version: int
    predictions: list[PredictionOut]
    payment: PaymentOut | None


class ModelInfo(BaseModel):
    model_id: int
    version: int
    dataset_id: int
    input: str
    classes: list[str]
    price: int
    payments: bool
    chain_id: int | None
    contract: str | None
    domain: dict[str, Any] | None
    voucher_header: str


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "voucher": {"type": "string"}}}},
            "application/json": {"schema": {"type": "object", "properties": {
                "rows": {"type": "array", "items": {"type": "object"}},
                "voucher": {"type": "string"}}, "required": ["rows"]}},
        },
    },
    "responses": {"402": {"description": "Payment required: the body says what is owed"}},
}


def create_app(served: ServedModel, gate: PaymentGate | None, redeemer: Redeemer | None = None,
               backend: Backend | None = None) -> FastAPI:
    """The app serving ``served``; without a gate every prediction is free; with a ``backend``
    the model runs there (the items are still checked here first)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if redeemer is not None:
            redeemer.start()
        try:
            yield
        finally:
            if redeemer is not None:
                redeemer.stop()

    app = FastAPI(title="DataBright prediction server", version="1", lifespan=lifespan)

    @app.exception_handler(PaymentError)
    async def _payment(_: Request, exc: PaymentError) -> JSONResponse:
        body: dict[str, Any] = {"detail": str(exc), "price": gate.price() if gate else 0}
        if isinstance(exc, PaymentRequired):
            body.update(channel=exc.channel, owed=exc.owed, previous=exc.previous)
        return JSONResponse(body, status_code=402)

    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(ComputeError)
    async def _compute(_: Request, exc: ComputeError) -> JSONResponse:
        return JSONResponse({"detail": f"the workers cannot answer: {exc}"}, status_code=503)

    @app.exception_handler(ChainError)
    async def _chain(_: Request, exc: ChainError) -> JSONResponse:
        return JSONResponse({"detail": f"the chain cannot be read: {exc}"}, status_code=503)

    def _check(model_id: int) -> None:
        if model_id != served.model_id:
            raise HTTPException(404, f"this server serves model {served.model_id}, not {model_id}")

    @app.get("/v1/models/{model_id}", response_model=ModelInfo)
    def info(model_id: int) -> ModelInfo:
        _check(model_id)
        return ModelInfo(
            model_id=served.model_id, version=served.version, dataset_id=served.dataset_id,
            input=served.spec.input, classes=list(served.spec.classes), price=gate.price() if gate else 0,
            payments=gate is not None, chain_id=gate.domain.chain_id if gate else None,
            contract=gate.domain.contract if gate else None,
            domain={"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": gate.domain.chain_id,
                    "verifyingContract": gate.domain.contract} if gate else None,
            voucher_header=VOUCHER_HEADER,
        )

    @app.post("/v1/models/{model_id}/predict", response_model=PredictResponse, openapi_extra=_BODY_DOC)
    async def predict(model_id: int, request: Request) -> PredictResponse:
        _check(model_id)
        items, field = await _read_items(request, served.spec.input)
        if len(items) > MAX_ITEMS:
            raise HTTPException(413, f"at most {MAX_ITEMS} items per request, got {len(items)}")
        x = served.encode(items)
        text = request.headers.get(VOUCHER_HEADER) or field
        voucher = Voucher.from_header(text) if text else None
        payment = None
        if gate is not None:
            cost = gate.price() * len(items)
            stored = gate.charge(voucher, len(items))
            if stored is not None:
                payment = PaymentOut(channel=stored.channel, amount=stored.amount, cost=cost)
        answered = served.predict(x) if backend is None else served.predictions(
            await run_in_threadpool(backend, items))
        predictions = [PredictionOut(label=p.label, confidence=p.confidence, probabilities=p.probabilities)
                       for p in answered]
        return PredictResponse(model_id=served.model_id, version=served.version, predictions=predictions,
                               payment=payment)

    return app


async def _read_items(request: Request, kind: str) -> tuple[list[bytes], str | None]:
    """The request's items as stored-item bytes, and a voucher given as a field."""
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise HTTPException(413, f"request body above {MAX_BODY} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        if kind != "image":
            raise HTTPException(415, "this model takes table rows as JSON: {\"rows\": [...]}")
        form = await request.form(max_files=MAX_ITEMS + 1)
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        voucher = form.get("voucher")
        items = [await f.read() for f in files]
        return items, voucher if isinstance(voucher, str) else None
    if content_type.startswith("application/json"):
        if kind != "table":
            raise HTTPException(415, "this model takes image files as multipart/form-data (field 'files')")
        try:
            # Not json.loads: a process holding the embedded chain runs with py-evm's raised recursion
            # limit, where deep nesting overflows the C stack; this parser refuses it past a fixed depth.
            body = pydantic_core.from_json(await request.body(), allow_inf_nan=False)
        except ValueError as exc:
            raise HTTPException(400, f"body is not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
            raise HTTPException(400, 'expected a JSON object {"rows": [{column: value, ...}, ...]}')
        rows = body["rows"]
        if any(not isinstance(row, dict) for row in rows):
            raise HTTPException(400, "every row is a JSON object of feature columns")
        voucher = body.get("voucher")
        if voucher is not None and not isinstance(voucher, str):
            raise HTTPException(400, "voucher is a string channel:amount:0xsignature")
        return [canonical_json(row) for row in rows], voucher
    raise HTTPException(415, "send image files as multipart/form-data or table rows as application/json")
