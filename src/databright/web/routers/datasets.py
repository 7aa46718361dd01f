"""Datasets: the list, one dataset's page, its items, Parquet download and new proposals."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from databright.errors import DataBrightError, InputError
from databright.operations import load_batch, propose_batch
from databright.web._charts import bar_chart, step_chart
from databright.web._pages import back, render
from databright.web._views import dataset_public, holders_public, metadata, proposal_public
from databright.web.deps import CsrfChecked, DatasetId, OptionalUser, SignerDep, StateDep
from databright.web.schemas import DatasetPublic, HolderPublic, ItemPublic

__all__ = ["router"]

router = APIRouter(tags=["datasets"])
PAGE = 48


def _items(state: StateDep, dataset_id: int, offset: int, limit: int) -> tuple[list[ItemPublic], int]:
    rows = state.ws.index.items(dataset_id, accepted=True)
    chosen = rows[offset: offset + limit]
    out = []
    for r in chosen:
        meta = json.loads(r.metadata_json or "{}")
        out.append(ItemPublic(cid=r.cid, label=r.label, proposal_id=r.proposal_id, position=r.position,
                              accepted=r.accepted, duplicate_of=r.duplicate_of, filename=str(meta.get("filename", ""))))
    return out, len(rows)


# -- API ------------------------------------------------------------------------


@router.get("/api/v1/datasets", response_model=list[DatasetPublic])
def list_datasets(state: StateDep) -> list[DatasetPublic]:
    return [dataset_public(state, d) for d in state.ws.index.datasets()]


@router.get("/api/v1/datasets/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: DatasetId, state: StateDep) -> DatasetPublic:
    return dataset_public(state, state.ws.index.dataset(dataset_id))


@router.get("/api/v1/datasets/{dataset_id}/shareholders", response_model=list[HolderPublic])
def get_shareholders(dataset_id: DatasetId, state: StateDep) -> list[HolderPublic]:
    return holders_public(state, dataset_id)


@router.get("/api/v1/datasets/{dataset_id}/items", response_model=list[ItemPublic])
def get_items(dataset_id: DatasetId, state: StateDep, offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[ItemPublic]:
    state.ws.index.dataset(dataset_id)
    return _items(state, dataset_id, offset, limit)[0]


@router.get("/api/v1/datasets/{dataset_id}/parquet", response_class=Response,
            responses={200: {"content": {"application/vnd.apache.parquet": {}}}})
def download_parquet(dataset_id: DatasetId, state: StateDep) -> Response:
    """Every accepted item: CID, label, proposal, contributor, and its bytes or feature columns."""
    d = state.ws.index.dataset(dataset_id)
    contributors = {p.proposal_id: p.contributor for p in state.ws.index.proposals(dataset_id=dataset_id)}
    rows: list[dict[str, Any]] = []
    for item in state.ws.index.items(dataset_id, accepted=True):
        row: dict[str, Any] = {"cid": item.cid, "label": item.label, "proposal_id": item.proposal_id,
                               "contributor": contributors.get(item.proposal_id, "")}
        data = state.ws.store.get(item.cid)  # digest-verified
        if d.kind == "table":
            row.update({k: v for k, v in json.loads(data).items() if k not in row})
        else:
            row.update(filename=str(json.loads(item.metadata_json or "{}").get("filename", "")), data=data)
        rows.append(row)
    buffer = io.BytesIO()
    pd.DataFrame(rows, columns=None if rows else ["cid", "label", "proposal_id", "contributor"]).to_parquet(
        buffer, index=False)
    name = f"{(d.name or 'dataset').replace(' ', '-')}-{dataset_id}.parquet"
    return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- pages ----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def datasets_page(request: Request, state: StateDep) -> HTMLResponse:
    return render(request, "datasets.html", datasets=list_datasets(state))


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse, include_in_schema=False)
def dataset_page(request: Request, dataset_id: DatasetId, state: StateDep,
                 page: Annotated[int, Query(ge=1, le=10**6)] = 1) -> HTMLResponse:
    index = state.ws.index
    row = index.dataset(dataset_id)
    d = dataset_public(state, row)
    accepted = sorted(index.proposals(dataset_id=dataset_id, status="accepted"), key=lambda p: p.entry_index or 0)
    growth, total = [(0, 0)], 0
    for k, p in enumerate(accepted, 1):
        total += p.item_count
        growth.append((k, total))
    items, count = _items(state, dataset_id, (page - 1) * PAGE, PAGE)
    labels: dict[str, int] = {}
    for item in index.items(dataset_id, accepted=True):
        labels[item.label] = labels.get(item.label, 0) + 1
    meta = metadata(row)
    schema = {k: v for k, v in meta.items() if k in ("kind", "labels", "license", "features")}
    return render(
        request, "dataset.html", d=d, meta=meta, schema=schema, holders=holders_public(state, dataset_id),
        entries=[proposal_public(state, p, row) for p in accepted],
        open=[proposal_public(state, p, row) for p in index.proposals(dataset_id=dataset_id, status="open")],
        growth_svg=step_chart(growth, "items after each accepted entry"),
        labels_svg=bar_chart(sorted(labels.items(), key=lambda kv: (len(kv[0]), kv[0])), "items per label"),
        items=items, page=page, pages=max(1, -(-count // PAGE)),
        pending_wei=row.revenue_total - row.revenue_withdrawn,
    )


@router.get("/datasets/{dataset_id}/propose", response_class=HTMLResponse, include_in_schema=False)
def propose_page(request: Request, dataset_id: DatasetId, state: StateDep, user: OptionalUser) -> Response:
    if user is None:
        return back(request, f"/signin?next=/datasets/{dataset_id}/propose", "Sign in to propose data.", "info")
    return render(request, "propose.html", d=dataset_public(state, state.ws.index.dataset(dataset_id)))


async def _save_uploads(form: Any, folder: Path) -> tuple[Path, Path | None]:
    """Write the uploaded files to ``folder``; returns (source, labels CSV)."""
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    labels = form.get("labels")
    table = form.get("table")
    if isinstance(table, UploadFile) and table.filename:
        path = folder / Path(table.filename).name
        path.write_bytes(await table.read())
        return path, None
    if not files:
        raise InputError("choose item files and their labels CSV, or a table (CSV or Parquet)")
    if not isinstance(labels, UploadFile) or not labels.filename:
        raise InputError("a labels CSV (columns file,label) must come with the item files")
    items = folder / "items"
    items.mkdir()
    for f in files:
        name = Path(f.filename or "").name
        if not name or name.startswith("."):
            raise InputError(f"invalid file name {f.filename!r}")
        (items / name).write_bytes(await f.read())
    csv = folder / "labels.csv"
    csv.write_bytes(await labels.read())
    return items, csv


@router.post("/datasets/{dataset_id}/propose", include_in_schema=False)
async def propose_submit(request: Request, dataset_id: DatasetId, state: StateDep, signer: SignerDep,
                         _: CsrfChecked) -> RedirectResponse:
    here = f"/datasets/{dataset_id}/propose"
    state.ws.index.dataset(dataset_id)
    form = await request.form()
    try:
        with tempfile.TemporaryDirectory(prefix="databright-upload-") as tmp:
            source, labels = await _save_uploads(form, Path(tmp))
            batch = load_batch(state.ws, source, labels_csv=labels)
            proposal_id, _dups = state.write(lambda: propose_batch(state.ws, signer, dataset_id, batch))
    except DataBrightError as exc:
        return back(request, here, str(exc).splitlines()[0], "error")
    return back(request, f"/proposals/{proposal_id}", f"Proposal {proposal_id} submitted: {batch.size} items.")
