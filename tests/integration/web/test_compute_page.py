"""The compute page and the job pages: an empty state until ComputeMarket is deployed, then its
workers and jobs as the contract's events left them (a job run to completion with one worker paid and
one slashed), each job's verification and split from its job document, and the rounds and exposure
ledger of a real coordinator over loopback (or why they are missing)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from databright.compute import JobSettings
from databright.compute._app import coordinator_app
from databright.web import DEFAULT_HOSTS, create_app
from databright.web._pages import eth
from databright.workspace import Workspace
from tests._servers import free_port
from tests.integration.web.compute_home import SPEC, Job, coordinator_with, run_job, served, submit_job
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


@pytest.fixture(scope="module")
def done(ws: Workspace) -> Job:
    return run_job(ws)


def _client(ws: Workspace, coordinator: str | None = None) -> TestClient:
    return TestClient(create_app(ws, secret="test-secret", allowed_hosts=[*DEFAULT_HOSTS, "testserver"],
                                 coordinator_url=coordinator))


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


def test_the_compute_page_shows_workers_and_jobs(ws: Workspace, done: Job) -> None:
    job = done
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


def _row(page: str, testid: str) -> str:
    found = re.search(rf'<tr data-testid="{testid}">.*?</tr>', page, re.S)
    assert found is not None, testid
    return found.group(0)


def test_a_job_page_shows_the_chain_facts_slashes_and_report(ws: Workspace, done: Job) -> None:
    with _client(ws) as client:
        page = client.get(f"/compute/jobs/{done.job_id}").text
        assert client.get("/compute/jobs/999999").status_code == 404
    assert "to the dataset's shareholders, paid on submission" in page and "UTC (chain time)" in page
    assert 'data-testid="budget">0.01 ETH' in page and 'data-testid="paid">0.004 ETH' in page
    assert 'data-testid="refunded">0.006 ETH' in page and 'href="/blobs/bafkreireport"' in page
    slashes = re.search(r'data-testid="slashes">.*?</table>', page, re.S)
    assert slashes is not None and eth(done.stake // 2) in slashes.group(0)
    assert 'href="/blobs/bafkreislash"' in slashes.group(0)
    # Its spec CID names nothing in this home's store: said so, and no coordinator is named either.
    assert 'data-testid="document-problem"' in page and "not in this dashboard" in page
    assert 'data-testid="no-coordinator"' in page and "--coordinator URL" in page


def test_verification_and_split_come_from_the_job_document(ws: Workspace) -> None:
    bare = str(ws.store.put(SPEC.to_json().encode()))
    optimistic = str(ws.store.put(JobSettings("optimistic", snapshot_every=4, samples=3).document(SPEC)))
    split_doc = str(ws.store.put(JobSettings("tmr", 2).document(SPEC)))
    tmr, trusted = submit_job(ws, bare, 3), submit_job(ws, bare, 1)
    checked, split = submit_job(ws, optimistic, 1), submit_job(ws, split_doc, 3)
    jobs = (tmr, trusted, checked, split)
    with _client(ws) as client:
        listing = client.get("/compute").text
        pages = {j: client.get(f"/compute/jobs/{j}").text for j in jobs}
        api = {j: client.get(f"/api/v1/compute/jobs/{j}").json() for j in jobs}
    assert "TMR" in _row(listing, f"job-{tmr}") and "pieces" not in _row(listing, f"job-{tmr}")
    assert "one worker" in _row(listing, f"job-{trusted}") and "optimistic" in _row(listing, f"job-{checked}")
    assert "TMR" in _row(listing, f"job-{split}") and "split in 2 pieces" in _row(listing, f"job-{split}")
    assert f'href="/compute/jobs/{split}"' in listing
    assert 'data-testid="verification">optimistic' in pages[checked] and "every 4 steps" in pages[checked]
    assert "re-executes 3 segments" in pages[checked] and 'data-testid="split">not split' in pages[checked]
    assert 'data-testid="verification">TMR' in pages[split] and 'data-testid="split">2 pieces' in pages[split]
    assert api[checked]["document"] == {"verification": "optimistic", "split": 1, "snapshot_every": 4,
                                        "samples": 3, "model": "mlp", "problem": None}
    assert api[split]["document"]["split"] == 2 and api[trusted]["document"]["verification"] == "one worker"
    assert api[tmr]["status"] == "waiting"
    assert api[tmr]["progress"]["named"] is False and "no coordinator" in api[tmr]["progress"]["error"]


def test_the_job_list_api_pages_with_cursors(ws: Workspace, done: Job) -> None:
    submit_job(ws, "bafkreispec", 3)
    with _client(ws) as client:
        everything = client.get("/api/v1/compute/jobs?limit=100").json()
        ids, cursor = [], None
        while True:
            reply = client.get("/api/v1/compute/jobs", params={"limit": 1, **({"cursor": cursor} if cursor else {})})
            assert reply.status_code == 200, reply.text
            ids += [j["job_id"] for j in reply.json()]
            cursor = reply.headers.get("x-next-cursor")
            if cursor is None:
                break
        back = client.get("/api/v1/compute/jobs", params={"limit": 1, "cursor": reply.headers["x-prev-cursor"]})
        bad = client.get("/api/v1/compute/jobs?cursor=not-a-cursor")
        too_many = client.get("/api/v1/compute/jobs?limit=101")
    assert ids == [j["job_id"] for j in everything] == sorted(ids, reverse=True) and len(ids) >= 2
    assert [j["job_id"] for j in back.json()] == [ids[-2]]
    assert bad.status_code == 400 and "invalid cursor" in bad.json()["error"]
    assert too_many.status_code == 422
    completed = next(j for j in everything if j["job_id"] == done.job_id)
    assert completed["training_fee_wei"] == int(ws.market.contract.functions.training_fee(1).call())
    assert completed["paid_wei"] == 4 * 10**15 and completed["slashes"][0]["evidence_cid"] == "bafkreislash"


def test_a_named_coordinator_gives_rounds_and_the_exposure_ledger(ws: Workspace, tmp_path: Path) -> None:
    bare = str(ws.store.put(SPEC.to_json().encode()))
    job_id = submit_job(ws, bare, 1)
    coordinator, worker = coordinator_with(ws, tmp_path / "coordinator.sqlite", job_id)
    try:
        with served(coordinator_app(coordinator)) as url, _client(ws, url) as client:
            listing = client.get("/compute").text
            page = client.get(f"/compute/jobs/{job_id}").text
            api = client.get(f"/api/v1/compute/jobs/{job_id}").json()
    finally:
        coordinator.engine.dispose()
    assert "0 / 2" in _row(listing, f"job-{job_id}") and 'data-testid="coordinator-ok"' in listing
    assert 'data-testid="rounds-done">0 / 2' in page and 'data-testid="coordinator-status">running' in page
    line = _row(page, f"exposure-{worker}")
    cap = api["progress"]["job"]["cap_items"]
    assert cap == 10 and f">{cap}<" in line and 'class="bar"' in line
    assert api["progress"]["exposure"][0]["worker"] == worker and 0 < api["progress"]["exposure"][0]["items"] <= cap
    # Another job, one this coordinator does not run: its page says so.
    with served(coordinator_app(coordinator)) as url, _client(ws, url) as client:
        other = client.get("/compute/jobs/1").text
    coordinator.engine.dispose()
    assert 'data-testid="not-known"' in other


def test_an_unreachable_coordinator_is_said_never_a_500(ws: Workspace, done: Job) -> None:
    with _client(ws, f"http://127.0.0.1:{free_port()}") as client:
        page = client.get(f"/compute/jobs/{done.job_id}")
        listing = client.get("/compute")
        api = client.get(f"/api/v1/compute/jobs/{done.job_id}")
    assert page.status_code == listing.status_code == api.status_code == 200
    assert 'data-testid="coordinator-unreachable"' in page.text and "coordinator unreachable" in listing.text
    assert api.json()["progress"]["error"].startswith("coordinator unreachable")


def test_a_job_document_stored_after_the_job_is_read_then(ws: Workspace) -> None:
    from databright.storage import cid_of

    text = SPEC.model_copy(update={"hidden": (5,)}).to_json().encode()
    job_id = submit_job(ws, str(cid_of(text)), 3)
    with _client(ws) as client:
        before = client.get(f"/api/v1/compute/jobs/{job_id}").json()["document"]
        ws.store.put(text)
        after = client.get(f"/api/v1/compute/jobs/{job_id}").json()["document"]
    assert "not in this dashboard" in before["problem"] and before["verification"] is None
    assert after["verification"] == "TMR" and after["problem"] is None
