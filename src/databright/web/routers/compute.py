"""The compute market: the page of workers and jobs, a page per job, and the same in the API.

On-chain facts come from ComputeMarket's events, the verification mode and split from
the job document at the job's spec CID, rounds and exposure from the coordinator the
operator named (``serve --coordinator``), if any.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from databright.errors import NotFound
from databright.index import sequence_page
from databright.web._compute_schemas import ComputeJobPublic, job_public
from databright.web._compute_views import ComputeBook, JobView, compute_book, job_document
from databright.web._pages import render
from databright.web._paging import PAGE_HEADERS, Cursor, set_page_headers
from databright.web._state import WebState
from databright.web._views import page_of
from databright.web.deps import MAX_ID, StateDep

__all__ = ["router"]

router = APIRouter(tags=["compute"])
PER_PAGE = 25
JobId = Annotated[int, Path(ge=0, le=MAX_ID)]
# Each job of a page is one request to the coordinator, so API pages stay short.
JobLimit = Annotated[int, Query(ge=1, le=100, description="jobs per page (at most 100)")]


def _newest_first(book: ComputeBook | None) -> list[JobView]:
    return sorted(book.jobs.values(), key=lambda j: -j.job_id) if book else []


def _job(state: WebState, job_id: int) -> JobView:
    book = compute_book(state)
    if book is None or job_id not in book.jobs:
        raise NotFound("job", job_id)
    return book.jobs[job_id]


@router.get("/api/v1/compute/jobs", response_model=list[ComputeJobPublic], responses=PAGE_HEADERS)
def list_jobs(state: StateDep, request: Request, response: Response, cursor: Cursor = None,
              limit: JobLimit = PER_PAGE) -> list[ComputeJobPublic]:
    """Training jobs, newest first: on-chain facts, the job document's verification and split, and the
    coordinator's rounds progress (without the exposure ledger; a job's own answer has it)."""
    page = sequence_page(_newest_first(compute_book(state)), "compute-jobs", lambda j: (j.job_id,), [int], cursor,
                         limit, descending=True)
    set_page_headers(request, response, page)
    reply = state.coordinator.read(j.job_id for j in page.rows)
    return [job_public(j, job_document(state, j), reply) for j in page.rows]


@router.get("/api/v1/compute/jobs/{job_id}", response_model=ComputeJobPublic)
def get_job(job_id: JobId, state: StateDep) -> ComputeJobPublic:
    """One job, with the exposure ledger of its dataset from the coordinator."""
    job = _job(state, job_id)
    reply = state.coordinator.read([job.job_id], exposure_of=job.dataset_id)
    return job_public(job, job_document(state, job), reply, detail=True)


@router.get("/compute", response_class=HTMLResponse, include_in_schema=False)
def compute_page(request: Request, state: StateDep, page: Annotated[int, Query(ge=1, le=10**6)] = 1) -> HTMLResponse:
    book = compute_book(state)
    workers = sorted(book.workers.values(), key=lambda w: (w.state != "active", -w.tasks, w.address)) if book else []
    jobs, page, pages = page_of(_newest_first(book), page, PER_PAGE)
    names = {d.dataset_id: d.name or f"dataset {d.dataset_id}" for d in state.ws.index.datasets()}
    return render(request, "compute.html", book=book, workers=workers, jobs=jobs, names=names, page=page,
                  pages=pages, pager_anchor="#jobs", documents={j.job_id: job_document(state, j) for j in jobs},
                  coordinator=state.coordinator.read(j.job_id for j in jobs))


@router.get("/compute/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def job_page(request: Request, job_id: JobId, state: StateDep) -> HTMLResponse:
    job = _job(state, job_id)
    names = {d.dataset_id: d.name or f"dataset {d.dataset_id}" for d in state.ws.index.datasets()}
    reply = state.coordinator.read([job.job_id], exposure_of=job.dataset_id)
    deadline = datetime.fromtimestamp(job.deadline, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return render(request, "compute_job.html", job=job, document=job_document(state, job), coordinator=reply,
                  status=reply.jobs.get(job.job_id), dataset=names.get(job.dataset_id, f"dataset {job.dataset_id}"),
                  deadline=deadline)
