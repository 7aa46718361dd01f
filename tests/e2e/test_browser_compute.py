"""The compute pages in a real browser (Debian's chromium via Playwright) against ``databright serve
--coordinator URL``, with a real coordinator over loopback: the job list and a job page show the chain's
facts, the job document's verification and split, the coordinator's rounds and the exposure ledger,
and at phone width (390 px) neither page is wider than the screen. Screenshots at laptop and phone
width go to test-artifacts/screenshots (compute, compute-job)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests._servers import free_port, stop
from tests.e2e.test_browser import ARGS, BIN, CHROMIUM, LAPTOP, PHONE, playwright_api, shoot
from tests.integration.web.compute_home import SPEC, coordinator_with, run_job, served, submit_job
from tests.integration.web.conftest import make_home

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    from databright.compute import JobSettings
    from databright.compute._app import coordinator_app
    from databright.workspace import Workspace

    root = tmp_path_factory.mktemp("browser-compute")
    home = make_home(root)
    ws = Workspace(home)
    try:
        run_job(ws)  # completed: one worker paid, one slashed
        split = str(ws.store.put(JobSettings("tmr", 2).document(SPEC)))
        submit_job(ws, split, 3)
        job_id = submit_job(ws, str(ws.store.put(SPEC.to_json().encode())), 1)
        coordinator, _ = coordinator_with(ws, root / "coordinator.sqlite", job_id)
    finally:
        ws.close()
    with served(coordinator_app(coordinator)) as url:
        port = free_port()
        web = subprocess.Popen([str(BIN), "--home", str(home), "serve", "--port", str(port), "--coordinator", url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert web.stdout is not None
            line = web.stdout.readline()
            assert f"http://127.0.0.1:{port}/" in line, line
            yield f"http://127.0.0.1:{port}", job_id
        finally:
            stop(web)  # type: ignore[arg-type]
            coordinator.engine.dispose()


def _fits(page: object) -> bool:
    return bool(page.evaluate(  # type: ignore[attr-defined]
        "document.documentElement.scrollWidth <= window.innerWidth && document.body.scrollWidth <= window.innerWidth"))


def test_the_compute_pages_show_rounds_and_exposure_and_fit_a_phone(dashboard: tuple[str, int]) -> None:
    base, job_id = dashboard
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_context(viewport=LAPTOP).new_page()
            page.goto(f"{base}/compute")
            expect(page.get_by_test_id("jobs")).to_contain_text("completed")
            expect(page.get_by_test_id(f"job-{job_id}")).to_contain_text("0 / 2")
            expect(page.get_by_test_id(f"job-{job_id - 1}")).to_contain_text("2 pieces")
            expect(page.get_by_test_id("coordinator-ok")).to_be_visible()
            shoot(page, "compute-laptop")
            page.click(f"[data-testid=job-{job_id}] a[href='/compute/jobs/{job_id}']")
            expect(page.get_by_test_id("rounds-done")).to_have_text("0 / 2")
            expect(page.get_by_test_id("exposure")).to_be_visible()
            shoot(page, "compute-job-laptop")
            phone = browser.new_context(viewport=PHONE).new_page()
            for name, path in (("compute-phone", "/compute"), ("compute-job-phone", f"/compute/jobs/{job_id}"),
                               ("compute-job-done-phone", "/compute/jobs/1")):
                phone.goto(base + path)
                expect(phone.locator("h1")).to_be_visible()
                assert _fits(phone), f"{path} is wider than a 390 px screen"
                shoot(phone, name)
        finally:
            browser.close()

