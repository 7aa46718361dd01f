"""The compute page: an empty state until ComputeMarket is deployed, then its workers and jobs as the
contract's events left them (a job run to completion with one worker paid and one slashed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from databright.web import DEFAULT_HOSTS, create_app
from databright.web._pages import eth
from databright.workspace import Workspace
from tests.integration.web.compute_home import run_job
from tests.integration.web.conftest import make_home


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A home of its own: the package's home is held open by the other page tests' workspace.
    return make_home(tmp_path_factory.mktemp("computepage"))


@pytest.fixture(scope="module")
def ws(home: Path) -> Iterator[Workspace]:
    workspace = Workspace(home)
    yield workspace
    workspace.close()


def _client(ws: Workspace) -> TestClient:
    return TestClient(create_app(ws, secret="test-secret", allowed_hosts=[*DEFAULT_HOSTS, "testserver"]))


def test_the_compute_page_says_when_nothing_is_deployed(home: Path) -> None:
    bare = Workspace(home)
    try:
        bare.deployment.contracts.pop("ComputeMarket", None)  # this workspace's view only; the file is untouched
        with _client(bare) as client:
            page = client.get("/compute").text
    finally:
        bare.close()
    assert 'data-testid="no-compute"' in page and "not deployed" in page
    assert 'href="/compute"' in page


def test_the_compute_page_shows_workers_and_jobs(ws: Workspace) -> None:
    job = run_job(ws)
    with _client(ws) as client:
        page = client.get("/compute").text
    row = re.search(rf'<tr data-testid="worker-{job.honest.address}">.*?</tr>', page, re.S)
    assert row is not None and ">4<" in row.group(0) and "0.004 ETH" in row.group(0) and eth(job.stake) in row.group(0)
    slashed = re.search(rf'<tr data-testid="worker-{job.cheat.address}">.*?</tr>', page, re.S)
    assert slashed is not None and eth(job.stake // 2) in slashed.group(0)
    assert 'href="/blobs/bafkreislash"' in slashed.group(0)
    job_row = re.search(rf'<tr data-testid="job-{job.job_id}">.*?</tr>', page, re.S)
    assert job_row is not None
    for text in ("completed", "3 × 5", "5%", "0.01 ETH", "0.004 ETH", "bafkreirepo"):
        assert text in job_row.group(0), text
