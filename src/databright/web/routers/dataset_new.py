"""Creating a dataset in the browser: the form, local accounts signing it here, wallets sending the prepared call."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from databright.errors import DataBrightError, InputError
from databright.operations import create_dataset
from databright.web._datasets import MAX_CONTRIBUTOR_FIELDS, dataset_plan, store_metadata
from databright.web._pages import back, render
from databright.web._state import WebState
from databright.web._wallet import prepare
from databright.web._views import dataset_public
from databright.web.deps import CsrfChecked, CurrentUser, OptionalUser, SignerDep, StateDep
from databright.web.schemas import DatasetCreate, DatasetPublic, ErrorPublic, WalletTxPublic

__all__ = ["router"]

router = APIRouter(tags=["datasets"])


def _create(state: WebState, signer: SignerDep, body: DatasetCreate) -> int:
    metadata, params = dataset_plan(body)
    dataset_id, _ = state.write(lambda: create_dataset(state.ws, signer, metadata, params))
    return dataset_id


@router.post("/api/v1/datasets", response_model=DatasetPublic, status_code=201,
             responses={400: {"model": ErrorPublic}, 403: {"model": ErrorPublic}})
def post_dataset(body: DatasetCreate, state: StateDep, signer: SignerDep, _: CsrfChecked) -> DatasetPublic:
    """Create a dataset from a local account (its metadata is stored, then the transaction sent)."""
    return dataset_public(state, state.ws.index.dataset(_create(state, signer, body)))


@router.post("/api/v1/datasets/tx", response_model=WalletTxPublic,
             responses={400: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def prepare_dataset(body: DatasetCreate, state: StateDep, user: CurrentUser, _: CsrfChecked) -> WalletTxPublic:
    """Store the new dataset's metadata; return the unsigned ``create_dataset`` a browser wallet sends."""
    metadata, params = dataset_plan(body)
    params = store_metadata(state, metadata, params)
    market = state.ws.market
    call = market.contract.functions.create_dataset(*market.create_dataset_args(params))
    return prepare(state, user.address, call)


@router.get("/datasets/new", response_class=HTMLResponse, include_in_schema=False)
def new_dataset_page(request: Request, user: OptionalUser) -> Response:
    if user is None:
        return back(request, "/signin?next=/datasets/new", "Sign in to create a dataset.", "info")
    return render(request, "dataset_new.html", defaults=DatasetCreate(name="x"), max_fields=MAX_CONTRIBUTOR_FIELDS)


@router.post("/datasets/new", include_in_schema=False)
async def new_dataset_form(request: Request, state: StateDep, signer: SignerDep, _: CsrfChecked) -> RedirectResponse:
    async with request.form() as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        try:
            body = DatasetCreate.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        dataset_id = _create(state, signer, body)
    except DataBrightError as exc:
        return back(request, "/datasets/new", str(exc).splitlines()[0], "error")
    return back(request, f"/datasets/{dataset_id}", f"Dataset {dataset_id} ({body.name}) created; you hold its "
                                                     f"{body.initial_shares:,} initial shares.")
