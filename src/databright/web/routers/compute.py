"""The compute page: workers (fee, stake, tasks, earnings, slashes) and training jobs, read from ComputeMarket."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from databright.web._compute_views import compute_book
from databright.web._pages import render
from databright.web._views import page_of
from databright.web.deps import StateDep

__all__ = ["router"]

router = APIRouter(tags=["compute"])
PER_PAGE = 25


@router.get("/compute", response_class=HTMLResponse, include_in_schema=False)
def compute_page(request: Request, state: StateDep, page: Annotated[int, Query(ge=1, le=10**6)] = 1) -> HTMLResponse:
    book = compute_book(state)
    workers = sorted(book.workers.values(), key=lambda w: (w.state != "active", -w.tasks, w.address)) if book else []
    jobs, page, pages = page_of(sorted(book.jobs.values(), key=lambda j: -j.job_id) if book else [], page, PER_PAGE)
    names = {d.dataset_id: d.name or f"dataset {d.dataset_id}" for d in state.ws.index.datasets()}
    return render(request, "compute.html", book=book, workers=workers, jobs=jobs, names=names, page=page,
                  pages=pages, pager_anchor="#jobs")
