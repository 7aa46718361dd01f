"""The FastAPI application: pages under ``/``, the REST API under ``/api/v1``.

``create_app`` takes a ``Workspace``; the app reads its index and writes through
it (transactions, then sync) under one lock. Errors a user can cause become a
4xx: a JSON ``{"error": ...}`` from the API, a message on the page otherwise.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from databright import __version__
from databright.errors import (
    AccountError,
    ChainError,
    DataBrightError,
    InputError,
    NotFound,
    PaymentError,
    StorageError,
    TransactionError,
)
from databright.storage import BlobNotFound
from databright.web._coordinator_status import StatusReader
from databright.web._limits import Limits, RateLimited
from databright.web._pages import render
from databright.web._security import DEFAULT_HOSTS, SecurityMiddleware
from databright.web._sessions import ServerSessionMiddleware
from databright.web._state import WebState
from databright.web.deps import Forbidden, SignInRequired, UploadTooLarge
from databright.web.routers import (
    accounts, auth, blobs, channels, comments, compute, dataset_new, datasets, model_pages, models, proposals,
    transactions,
)
from databright.workspace import Workspace

__all__ = ["DEFAULT_HOSTS", "MAX_UPLOAD_BYTES", "Limits", "create_app", "load_secret"]

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
_STATUS: list[tuple[type[DataBrightError], int]] = [
    (BlobNotFound, 404), (UploadTooLarge, 413), (RateLimited, 429),
    (NotFound, 404), (SignInRequired, 401), (Forbidden, 403), (AccountError, 403),
    (TransactionError, 409), (ChainError, 503), (InputError, 400), (StorageError, 400), (PaymentError, 402),
]


def load_secret(home: Path) -> str:
    """The cookie-signing secret of this home, created (mode 0600) on first use."""
    path = home / "web" / "secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, message: str) -> Response:
    if _is_api(request):
        return JSONResponse({"error": message}, status_code=status)
    return render(request, "error.html", status_code=status, status=status, message=message)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DataBrightError)
    async def _domain(request: Request, exc: DataBrightError) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        response = _error(request, status, message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:5]
        )
        return _error(request, 422, problems or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return _error(request, exc.status_code, "page not found" if exc.status_code == 404 else message)


def create_app(ws: Workspace, *, secret: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               allowed_hosts: Iterable[str] = DEFAULT_HOSTS, limits: Limits | None = None,
               model_servers: Mapping[int, str] | None = None, coordinator_url: str | None = None) -> FastAPI:
    """The app for ``ws``: answers only for ``allowed_hosts`` (any port unless one is given, ``host:port``);
    ``model_servers`` names the prediction servers of models (others are found by their announcement),
    ``coordinator_url`` the coordinator whose rounds and exposure ledger the compute pages show."""
    app = FastAPI(
        title="DataBright",
        version=__version__,
        summary="Datasets as markets: browse datasets, proposals, models and accounts; vote, comment, withdraw.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    state = WebState(ws, limits, model_servers, StatusReader(coordinator_url))
    state.refresh()
    app.state.web = state
    app.state.max_upload_bytes = max_upload_bytes
    app.add_middleware(ServerSessionMiddleware, store=state.sessions, secret=secret or load_secret(ws.home.root),
                       max_age=int(state.sessions.max_age))
    # Added last, so it runs first: nothing reaches a route from a foreign Host or with an oversized body.
    app.add_middleware(SecurityMiddleware, allowed_hosts=list(allowed_hosts), max_body_bytes=max_upload_bytes)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    # dataset_new first: its /datasets/new must win over /datasets/{dataset_id}.
    for module in (dataset_new, datasets, proposals, comments, models, model_pages, accounts, channels, compute,
                   auth, blobs, transactions):
        app.include_router(module.router)
    _install_error_handlers(app)
    return app
