"""The model registry and model pages: registered models ranked by verified score, a model's
versions, scores and revenue, and its "try it" form that pays through a payment channel."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from databright.errors import DataBrightError, InputError, NotFound
from databright.web._registry import ModelView, channels, model_view, models_deployed, ranked
from databright.web._pages import back, render
from databright.web._state import WebState
from databright.web._try import MAX_TRY_ITEMS, TryItems, pay_local, pay_wallet, quote, read_rows, signed, spec_of
from databright.web._views import page_of
from databright.web.deps import CsrfChecked, CurrentUser, OptionalUser, SessionDep, SignerDep, StateDep, WebSession
from databright.web.routers.models import registry

__all__ = ["router"]

router = APIRouter(tags=["models"])
PER_PAGE = 20
ModelId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_HTTP: dict[int, httpx.Client] = {}


class QuoteCreate(BaseModel):
    items: int = Field(ge=1, le=MAX_TRY_ITEMS, description="how many images or rows the request predicts")
    deposit_wei: int | None = Field(default=None, ge=1, le=2**256 - 1, description=(
        "opens a channel with this deposit if none of yours can pay"))


def _http(state: WebState) -> httpx.Client:
    """One connection pool per app to the prediction servers."""
    return _HTTP.setdefault(id(state), httpx.Client(timeout=60.0))


def _model(state: WebState, model_id: int) -> ModelView:
    model = model_view(state, model_id)
    if not model.versions:
        raise NotFound("model", model_id)
    return model


def _names(state: WebState) -> dict[int, str]:
    return {d.dataset_id: d.name or f"dataset {d.dataset_id}" for d in state.ws.index.datasets()}


def _deposit(text: str) -> int | None:
    """A deposit typed in ETH ('0.01'); empty means none."""
    if not text.strip():
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"the deposit {text.strip()!r} is not an amount of ETH") from None
    if not value.is_finite() or value <= 0 or value > 10**9:
        raise InputError("the deposit is a positive amount of ETH")
    return int(value * 10**18)


async def _items(request: Request, state: WebState, model: ModelView) -> TryItems:
    form = await request.form(max_files=MAX_TRY_ITEMS + 1)
    spec = spec_of(state, model)
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    if spec.input == "image":
        return TryItems([(str(f.filename), await f.read()) for f in files], [])
    rows = form.get("rows")
    return TryItems([], read_rows(rows if isinstance(rows, str) else "", spec.features))


def _keep(session: WebSession, model_id: int, result: dict[str, Any]) -> None:
    session.data["tried"] = {"model_id": model_id, **result}


# -- pages ----------------------------------------------------------------------


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
def models_page(request: Request, state: StateDep,
                dataset: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                page: Annotated[int, Query(ge=1, le=10**6)] = 1) -> HTMLResponse:
    deployed = models_deployed(state)
    rows, page, pages = page_of(ranked(state, dataset_id=dataset) if deployed else [], page, PER_PAGE)
    start = (page - 1) * PER_PAGE
    return render(request, "models.html", models=rows, start=start, names=_names(state), page=page, pages=pages,
                  deployed=deployed, dataset=dataset, references=registry(state),
                  pager_query=f"dataset={dataset}&" if dataset else "")


@router.get("/models/{model_id}", response_class=HTMLResponse, include_in_schema=False)
def model_page(request: Request, model_id: ModelId, state: StateDep, user: OptionalUser,
               session: SessionDep) -> HTMLResponse:
    model = _model(state, model_id)
    tried = session.data.pop("tried", None)
    mine = channels(state, user.address, model_id) if user else []
    try:
        spec: Any = spec_of(state, model)
    except DataBrightError:
        spec = None  # the spec's blob is not in this home's store: the page still shows the registry
    return render(request, "model.html", m=model, dataset=_names(state).get(model.dataset_id, ""), spec=spec,
                  tried=tried if tried and tried.get("model_id") == model_id else None, channels=mine,
                  spent={c.channel_id: signed(state, c) for c in mine},
                  max_items=MAX_TRY_ITEMS, header=",".join(spec.features) if spec and spec.input == "table" else "")


@router.post("/models/{model_id}/try", include_in_schema=False)
async def try_form(request: Request, model_id: ModelId, state: StateDep, signer: SignerDep,
                   session: SessionDep, _: CsrfChecked) -> RedirectResponse:
    """Local mode: the server signs the voucher with the session's key (and opens a channel if needed)."""
    here = f"/models/{model_id}#try"
    try:
        model = _model(state, model_id)
        form = await request.form()
        deposit = form.get("deposit_eth")
        paid = pay_local(state, signer, model, await _items(request, state, model),
                         _deposit(deposit if isinstance(deposit, str) else ""), _http(state))
    except DataBrightError as exc:
        return back(request, here, str(exc).splitlines()[0], "error")
    _keep(session, model_id, paid.public())
    return RedirectResponse(here, status_code=303)


# -- API for wallet sessions -------------------------------------------------------


@router.post("/api/v1/models/{model_id}/try/quote")
def post_quote(model_id: ModelId, body: QuoteCreate, state: StateDep, user: CurrentUser,
               _: CsrfChecked) -> dict[str, Any]:
    """What to sign for a paid prediction: the channel and the EIP-712 voucher (``eth_signTypedData_v4``),
    or, when none of your channels can pay, the ``open_channel`` transaction to send first."""
    return quote(state, user.address, _model(state, model_id), body.items, body.deposit_wei, _http(state))


@router.post("/api/v1/models/{model_id}/try")
async def post_try(request: Request, model_id: ModelId, state: StateDep, user: CurrentUser, session: SessionDep,
                   _: CsrfChecked) -> Response:
    """Predict the uploaded images (field ``files``) or CSV rows (field ``rows``) with the voucher your wallet
    signed (field ``voucher``, ``channel:amount:0xsignature``); it must be yours and pay the quote exactly."""
    model = _model(state, model_id)
    form = await request.form(max_files=MAX_TRY_ITEMS + 1)
    voucher = form.get("voucher")
    paid = pay_wallet(state, user.address, model, await _items(request, state, model),
                      voucher if isinstance(voucher, str) else "", _http(state))
    _keep(session, model_id, paid.public())
    return JSONResponse(paid.public())
