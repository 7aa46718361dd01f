"""The compute pages under attack: hostile strings on-chain (a job's spec, report and evidence CIDs), a
hostile job document at a spec CID, and a hostile coordinator (script in its JSON, malformed, huge, slow,
redirecting or lying answers). Every page still answers 200 with nothing of it run as markup."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient

from databright.web import DEFAULT_HOSTS, create_app
from databright.workspace import Workspace
from tests.integration.web.compute_home import SPEC, served, submit_job
from tests.integration.web.conftest import make_home

SCRIPT = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = Workspace(make_home(tmp_path_factory.mktemp("computeattacks")))
    yield workspace
    workspace.close()


def _client(ws: Workspace, coordinator: str | None = None) -> TestClient:
    return TestClient(create_app(ws, secret="s", allowed_hosts=[*DEFAULT_HOSTS, "testserver"],
                                 coordinator_url=coordinator))


def _inert(text: str) -> None:
    """No markup of the attacker's survived: its < arrived escaped, so neither element exists."""
    assert "<script>alert" not in text and "<img src=x" not in text


def test_hostile_cids_on_chain_are_shown_as_text(ws: Workspace) -> None:
    job_id = submit_job(ws, SCRIPT, 3)
    with _client(ws) as client:
        pages = [client.get("/compute"), client.get(f"/compute/jobs/{job_id}")]
        api = client.get(f"/api/v1/compute/jobs/{job_id}")
    for page in pages:
        assert page.status_code == 200
        _inert(page.text)
    assert "&lt;script&gt;" in pages[1].text or "%3Cscript%3E" in pages[1].text
    assert api.json()["spec_cid"] == SCRIPT and "not in this dashboard" in api.json()["document"]["problem"]


@pytest.mark.parametrize("document", [
    {"kind": "databright.compute.job-spec", "version": 1, "model": "SPEC", "verification": SCRIPT},
    {"kind": "databright.compute.job-spec", "version": 1, "model": "SPEC", SCRIPT: 1},
    {"kind": SCRIPT, "model": SCRIPT},
    [SCRIPT],
    b"[" * 100_000 + b"]" * 100_000,  # under 256 KiB, and it crashed the server when json.loads read it
])
def test_a_hostile_job_document_is_a_one_line_problem(ws: Workspace, document: Any) -> None:
    spec = json.loads(SPEC.to_json())
    if isinstance(document, dict):
        document = {k: spec if v == "SPEC" else v for k, v in document.items()}
    cid = str(ws.store.put(document if isinstance(document, bytes) else json.dumps(document).encode()))
    job_id = submit_job(ws, cid, 3)
    with _client(ws) as client:
        page = client.get(f"/compute/jobs/{job_id}")
        listing = client.get("/compute")
        problem = client.get(f"/api/v1/compute/jobs/{job_id}").json()["document"]["problem"]
    assert page.status_code == listing.status_code == 200
    _inert(page.text)
    _inert(listing.text)
    assert problem.startswith("the job document is unreadable: ") and "\n" not in problem
    assert 'data-testid="document-problem"' in page.text


def test_an_oversized_job_document_is_not_read(ws: Workspace) -> None:
    cid = str(ws.store.put(b"{" + b" " * (300 * 1024) + b"}"))
    job_id = submit_job(ws, cid, 3)
    with _client(ws) as client:
        problem = client.get(f"/api/v1/compute/jobs/{job_id}").json()["document"]["problem"]
    assert "larger than 256 KiB" in problem


def _hostile(job: Any, exposure: Any = (), *, status: int = 200, raw: bytes | None = None,
             delay: float = 0.0, headers: dict[str, str] | None = None) -> FastAPI:
    """A coordinator that answers whatever the attacker likes."""
    app = FastAPI()

    async def answer(body: Any) -> Response:
        if delay:
            await asyncio.sleep(delay)
        content = raw if raw is not None else json.dumps(body).encode()
        return Response(content, status_code=status, media_type="application/json", headers=headers)

    @app.get("/v1/status/jobs/{job_id}")
    async def job_status(job_id: int) -> Response:
        return await answer(job(job_id) if callable(job) else job)

    @app.get("/v1/status/exposure/{dataset_id}")
    async def ledger(dataset_id: int) -> Response:
        return await answer(list(exposure))

    return app


def _status(job_id: int, **changes: Any) -> dict[str, Any]:
    return {"job_id": job_id, "status": "running", "round": 0, "rounds": 2, "cap_items": 10, "slashes": 0,
            "score": None, "waiting": None, "round_detail": [{"round": 0, "tasks": 4, "accepted": 1,
                                                             "checkpoint": "bafkreiabc"}], **changes}


WORKER = "0x" + "ab" * 20


def test_script_in_a_coordinators_texts_is_shown_as_text(ws: Workspace) -> None:
    job_id = submit_job(ws, "bafkreispec", 3)
    app = _hostile(lambda j: _status(j, waiting=SCRIPT, extra=SCRIPT), [{"worker": WORKER, "items": 3,
                                                                        "cap_items": 10, "note": SCRIPT}])
    with served(app) as url, _client(ws, url) as client:
        page = client.get(f"/compute/jobs/{job_id}")
        listing = client.get("/compute")
    assert page.status_code == listing.status_code == 200
    _inert(page.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert f'data-testid="exposure-{WORKER}"' in page.text


@pytest.mark.parametrize(("name", "app", "reason"), [
    ("script status", _hostile(lambda j: _status(j, status=SCRIPT)), "malformed (status)"),
    ("script checkpoint", _hostile(lambda j: _status(j, round_detail=[
        {"round": 0, "tasks": 1, "accepted": 1, "checkpoint": "javascript:alert(1)"}])), "round_detail.0.checkpoint"),
    ("script worker", _hostile(_status, [{"worker": SCRIPT, "items": 1}]), "exposure ledger is malformed (worker)"),
    ("numbers as text", _hostile(lambda j: _status(j, rounds="2")), "malformed (rounds)"),
    ("infinite score", _hostile(lambda j: _status(j), raw=b'{"job_id": 1, "status": "running", "score": 1e999}'),
     "malformed (score)"),
    ("another job", _hostile(lambda j: _status(j + 1)), "another job"),
    ("not JSON", _hostile(None, raw=b"<html>" + SCRIPT.encode()), "did not answer JSON"),
    ("deep JSON", _hostile(None, raw=b"[" * 100_000 + b"]" * 100_000), "did not answer JSON"),
    ("server error", _hostile(None, status=500), "answered HTTP 500"),
    ("redirect", _hostile(None, status=302, headers={"Location": "http://example.com/"}), "answered HTTP 302"),
    ("huge", _hostile(None, raw=b" " * (9 * 1024 * 1024)), "more than 8 MiB"),
    ("slow", _hostile(None, delay=3.0), "no answer within 2 s"),
])
def test_a_hostile_coordinator_is_unreachable_never_a_500(ws: Workspace, name: str, app: FastAPI,
                                                          reason: str) -> None:
    job_id = 1 if name == "infinite score" else submit_job(ws, "bafkreispec", 3)
    with served(app) as url, _client(ws, url) as client:
        page = client.get(f"/compute/jobs/{job_id}")
        api = client.get(f"/api/v1/compute/jobs/{job_id}")
    assert page.status_code == api.status_code == 200, name
    _inert(page.text)
    assert 'data-testid="coordinator-unreachable"' in page.text
    error = api.json()["progress"]["error"]
    assert error.startswith("coordinator unreachable: ") and reason in error, error
    assert "<" not in error and "\n" not in error
