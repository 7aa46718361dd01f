"""Datasets: the list, one dataset's page, its items, Parquet download and new proposals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request
from fastapi import UploadFile as FileUpload
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from databright.errors import DataBrightError, InputError
from databright import operations
from databright.operations import Batch, propose_batch
from databright.index import dataset_impact, revenue_by_source
from databright.storage import digest_of_cid
from databright.web._charts import bar_chart, step_chart
from databright.web._pages import back, plural, render
from databright.web._details import read_fields, required_fields, save_details, sign_details, verify_details
from databright.web._uploads import check_funds, staged_batch
from databright.web._state import WebState
from databright.web._paging import PAGE_HEADERS, Cursor, Limit, pager, set_page_headers
from databright.web._views import dataset_public, holders_public, item_public, metadata, proposal_public
from databright.web._wallet import prepare
from databright.web._texts import item_texts
from databright.web.deps import CsrfChecked, CurrentUser, DatasetId, OptionalUser, SignerDep, StateDep
from databright.chain import Commitment
from databright.web.schemas import (
    DatasetPublic,
    ErrorPublic,
    HolderPublic,
    ItemPublic,
    ProposalTxPublic,
    RevealCreate,
    WalletTxPublic,
)

__all__ = ["router"]

router = APIRouter(tags=["datasets"])
PAGE = 48  # items on a dataset page
SIDE_PAGE = 20  # shareholders and entries on a dataset page
_CHART_LABELS = 100  # bars: ImageNet's thousand classes would be unreadable anyway


# -- API ------------------------------------------------------------------------


@router.get("/api/v1/datasets", response_model=list[DatasetPublic])
def list_datasets(state: StateDep) -> list[DatasetPublic]:
    return [dataset_public(state, d) for d in state.ws.index.datasets()]


@router.get("/api/v1/datasets/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: DatasetId, state: StateDep) -> DatasetPublic:
    return dataset_public(state, state.ws.index.dataset(dataset_id))


@router.get("/api/v1/datasets/{dataset_id}/shareholders", response_model=list[HolderPublic], responses=PAGE_HEADERS)
def get_shareholders(dataset_id: DatasetId, state: StateDep, request: Request, response: Response,
                     cursor: Cursor = None, limit: Limit = 100) -> list[HolderPublic]:
    """Shareholders, largest first, one page at a time."""
    dataset = state.ws.index.dataset(dataset_id)
    page = state.ws.index.holders_page(dataset_id, cursor=cursor, limit=limit)
    set_page_headers(request, response, page)
    return holders_public(dataset, page.rows)


@router.get("/api/v1/datasets/{dataset_id}/items", response_model=list[ItemPublic], responses=PAGE_HEADERS)
def get_items(dataset_id: DatasetId, state: StateDep, request: Request, response: Response,
              cursor: Cursor = None, limit: Limit = 100) -> list[ItemPublic]:
    """Accepted items in entry order, one page at a time."""
    state.ws.index.dataset(dataset_id)
    page = state.ws.index.items_page(dataset_id, cursor=cursor, limit=limit)
    set_page_headers(request, response, page)
    return [item_public(r) for r in page.rows]


@router.get("/api/v1/datasets/{dataset_id}/parquet", response_class=StreamingResponse,
            responses={200: {"content": {"application/vnd.apache.parquet": {}}}})
def download_parquet(dataset_id: DatasetId, state: StateDep) -> StreamingResponse:
    """Every accepted item, as ``databright dataset export`` writes ``items.parquet`` (Hugging Face features:
    ``label`` a ClassLabel, files as Image ``{bytes, path}``), sent a row group at a time."""
    from databright.export import parquet_chunks

    d = state.ws.index.dataset(dataset_id)
    name = f"{(d.name or 'dataset').replace(' ', '-')}-{dataset_id}.parquet"
    return StreamingResponse(parquet_chunks(state.ws, dataset_id), media_type="application/vnd.apache.parquet",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- pages ----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def datasets_page(request: Request, state: StateDep) -> HTMLResponse:
    return render(request, "datasets.html", datasets=list_datasets(state))


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse, include_in_schema=False)
def dataset_page(request: Request, dataset_id: DatasetId, state: StateDep, cursor: Cursor = None,
                 holders: Cursor = None, entries: Cursor = None) -> HTMLResponse:
    """What it costs does not depend on the dataset's size: pages of each list, counters for the totals."""
    index = state.ws.index
    row = index.dataset(dataset_id)
    d = dataset_public(state, row)
    items = index.items_page(dataset_id, cursor=cursor, limit=PAGE)
    holder_page = index.holders_page(dataset_id, cursor=holders, limit=SIDE_PAGE)
    entry_page = index.entries_page(dataset_id, cursor=entries, limit=SIDE_PAGE)
    meta = metadata(row)
    schema = {k: v for k, v in meta.items() if k in ("kind", "labels", "license", "features")}
    labels = sorted(index.label_counts(dataset_id), key=lambda kv: (len(kv[0]), kv[0]))
    return render(
        request, "dataset.html", d=d, meta=meta, schema=schema, holders=holders_public(row, holder_page.rows),
        holders_pager=pager(request, holder_page, "holders", "#holders"),
        entries=[proposal_public(state, p, row) for p in entry_page.rows],
        entries_pager=pager(request, entry_page, "entries", "#entries"),
        open=[proposal_public(state, p, row) for p in index.proposals_page(dataset_id, "open", limit=SIDE_PAGE).rows],
        growth_svg=step_chart(index.growth(dataset_id), "items after each accepted entry"),
        labels_svg=bar_chart(labels[:_CHART_LABELS], "items per label"),
        items=[item_public(r) for r in items.rows], pager=pager(request, items, "cursor", "#items"),
        texts=item_texts(state.ws.store, items.rows, row.kind),
        pending_wei=row.revenue_total - row.revenue_withdrawn, sources=revenue_by_source(index, dataset_id),
        trained=dataset_impact(index, dataset_id),
    )


@router.get("/datasets/{dataset_id}/propose", response_class=HTMLResponse, include_in_schema=False)
def propose_page(request: Request, dataset_id: DatasetId, state: StateDep, user: OptionalUser) -> Response:
    if user is None:
        return back(request, f"/signin?next=/datasets/{dataset_id}/propose", "Sign in to propose data.", "info")
    row = state.ws.index.dataset(dataset_id)
    return render(request, "propose.html", d=dataset_public(state, row), fields=required_fields(metadata(row)))


def _upload(value: Any) -> UploadFile | None:
    return value if isinstance(value, UploadFile) else None


def check_batch(state: WebState, dataset_id: int, batch: Batch, *, allow_duplicates: bool = False) -> None:
    """What ``operations.propose_batch`` checks before it sends (the same function).

    For a wallet session, which sends the transaction itself: a batch that
    passes here is exactly one local mode would have proposed.
    """
    with state.lock:
        operations.check_batch(state.ws, dataset_id, batch, allow_duplicates=allow_duplicates)


@router.post("/datasets/{dataset_id}/propose", include_in_schema=False)
async def propose_submit(request: Request, dataset_id: DatasetId, state: StateDep, signer: SignerDep,
                         _: CsrfChecked) -> RedirectResponse:
    here = f"/datasets/{dataset_id}/propose"
    row = state.ws.index.dataset(dataset_id)
    required = required_fields(metadata(row))
    async with request.form(max_files=5000) as form:
        try:
            details = read_fields(required, [str(v) for v in form.getlist("detail")]) if required else []
            check_funds(state, signer.address, dataset_id)
            files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            with staged_batch(files, _upload(form.get("labels")), _upload(form.get("table")), row.kind) as staged:
                batch = staged.batch
                check_batch(state, dataset_id, batch)
                staged.store_in(state.ws.store)
            proposal_id, _dups = state.write(lambda: propose_batch(state.ws, signer, dataset_id, batch))
            if details:
                date, signature = sign_details(signer, state.chain_id, dataset_id, details)
                save_details(state.ws.home.root, dataset_id, batch.manifest_cid, signer.address, details, date,
                             signature)
        except DataBrightError as exc:
            return back(request, here, str(exc).splitlines()[0], "error")
    return back(request, f"/proposals/{proposal_id}", f"Proposal {proposal_id} submitted: {plural(batch.size, 'item')}.")


@router.post("/api/v1/datasets/{dataset_id}/proposals/tx", response_model=ProposalTxPublic,
             responses={400: {"model": ErrorPublic}, 404: {"model": ErrorPublic}, 409: {"model": ErrorPublic},
                        413: {"model": ErrorPublic}})
def prepare_proposal(
    dataset_id: DatasetId, state: StateDep, user: CurrentUser, _: CsrfChecked,
    files: Annotated[list[FileUpload] | None, File(description="the item files (a files dataset)")] = None,
    labels: Annotated[FileUpload | None, File(description="CSV with columns file,label for the files")] = None,
    table: Annotated[FileUpload | None, File(description="CSV or Parquet with a label column (a table dataset)")] = None,
    allow_duplicates: Annotated[bool, Form(description="propose items already in the dataset (flagged)")] = False,
    detail: Annotated[list[str] | None, Form(description="the details the dataset asks for, in its order")] = None,
    details_date: Annotated[str | None, Form(max_length=40, description="when the details were signed")] = None,
    details_signature: Annotated[str | None, Form(max_length=140, description="EIP-191 signature of the details")
                                 ] = None,
) -> ProposalTxPublic:
    """Store an uploaded batch and its manifest; return the unsigned ``commit_proposal`` a browser wallet sends.

    The batch is checked as local mode checks it (kind, labels, duplicates,
    size, the dataset's contributor details) and the sender's funds for the
    bond, before anything is stored; nothing is sent. A proposal takes two
    transactions: the wallet sends the commitment (it binds the sender, so
    nobody can copy the proposal), POSTs its hash to /transactions and, once it
    is mined, POSTs ``reveal`` to ``reveal_url`` for the reveal, whose value is
    the dataset's proposal bond.
    """
    row = state.ws.index.dataset(dataset_id)
    required = required_fields(metadata(row))
    details = read_fields(required, detail or []) if required else []
    if details:
        verify_details(state.chain_id, dataset_id, user.address, details, details_date or "", details_signature or "")
    check_funds(state, user.address, dataset_id)
    with staged_batch(files or [], labels, table, row.kind) as staged:
        batch = staged.batch
        check_batch(state, dataset_id, batch, allow_duplicates=allow_duplicates)
        commitment = Commitment.new(user.address, dataset_id, batch.manifest.root, digest_of_cid(batch.manifest_cid),
                                    batch.size)
        call = state.ws.market.contract.functions.commit_proposal(commitment.digest)
        commit = prepare(state, user.address, call)
        staged.store_in(state.ws.store)  # only now: the wallet can send it
    if details:
        save_details(state.ws.home.root, dataset_id, batch.manifest_cid, user.address, details, details_date or "",
                     details_signature or "")
    reveal = RevealCreate(dataset_id=dataset_id, root="0x" + commitment.root.hex(),
                          manifest_digest="0x" + commitment.manifest_digest.hex(), item_count=commitment.item_count,
                          salt="0x" + commitment.salt.hex())
    return ProposalTxPublic(commit=commit, reveal=reveal, reveal_url="/api/v1/proposals/reveal/tx")


@router.post("/api/v1/proposals/reveal/tx", response_model=WalletTxPublic,
             responses={400: {"model": ErrorPublic}, 404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def prepare_reveal(body: RevealCreate, state: StateDep, user: CurrentUser, _: CsrfChecked) -> WalletTxPublic:
    """The unsigned ``reveal_proposal`` of a mined commitment, with the bond as value; then POST its hash to
    /transactions. Refused with the contract's reason (no commitment, too recent, root taken) before the wallet
    shows anything."""
    bond = state.ws.index.dataset(body.dataset_id).proposal_bond
    call = state.ws.market.contract.functions.reveal_proposal(
        body.dataset_id, bytes.fromhex(body.root[2:]), bytes.fromhex(body.manifest_digest[2:]), body.item_count,
        bytes.fromhex(body.salt[2:]))
    return prepare(state, user.address, call, value=bond)
