"""The dashboard in chromium against attacks a browser makes possible: framing, and pages that must run under the CSP.

A hostile page on another origin frames a proposal page of a signed-in
shareholder (clickjacking): the browser must refuse to render the frame. Every
page must work with no Content-Security-Policy violation (no inline script or
style), and ``serve --allowed-host`` must add a Host without opening others.
"""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import free_port, stop
from tests.e2e.test_browser import ARGS, BIN, CHROMIUM, LAPTOP, PHONE, cli, sign_in

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
# One word longer than a phone is wide: it must wrap or end in an ellipsis, never widen the page.
LONG_NAME = "Handwritten_shapes_collected_by_the_Field_Survey_of_2026_second_release_" * 2



@contextlib.contextmanager
def _hostile_site(html: str) -> Iterator[str]:
    """Another origin on this machine (another port: cross-origin, and same-site, so cookies go along)."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    """A dataset of dev0's with dev1's open proposal, served with one extra allowed Host."""
    from databright.chain import DatasetParams
    from databright.operations import DatasetMetadata, create_dataset, load_batch, propose_batch
    from databright.workspace import Workspace
    from tests.integration.web.conftest import write_batch

    root = tmp_path_factory.mktemp("security")
    home = root / "home"
    cli(home, "init", "--accounts", "2")
    cli(home, "deploy")
    ws = Workspace(home)
    try:
        meta = DatasetMetadata(LONG_NAME, "Tiny test images.", "files", ("a", "b"), "CC0")
        params = DatasetParams(metadata_digest=b"\0" * 32, initial_shares=1000, base_reward_per_item=10)
        seed = load_batch(ws, write_batch(root / "seed", list("abab"), 1))
        dataset_id, _ = create_dataset(ws, ws.signer("dev0"), meta, params, seed=seed)
        batch = load_batch(ws, write_batch(root / "batch", list("aabb"), 2))
        proposal_id, _ = propose_batch(ws, ws.signer("dev1"), dataset_id, batch)
    finally:
        ws.close()
    port = free_port()
    process = subprocess.Popen([str(BIN), "--home", str(home), "serve", "--port", str(port),
                                "--allowed-host", "dash.example"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert f"http://127.0.0.1:{port}/" in line, line
    try:
        _wait_until_up(port)
        yield f"http://127.0.0.1:{port}", port, proposal_id
    finally:
        stop(process)  # type: ignore[arg-type]
        assert process.returncode == 0


def _wait_until_up(port: int, timeout: float = 20.0) -> None:
    """The address line comes before uvicorn listens: wait for the first answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _status(port, f"127.0.0.1:{port}")
            return
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _status(port: int, host: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/session", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_serve_answers_only_for_allowed_hosts(server: tuple[str, int, int]) -> None:
    _, port, _ = server
    assert _status(port, f"127.0.0.1:{port}") == 200
    assert _status(port, f"dash.example:{port}") == 200
    assert _status(port, f"attacker.example:{port}") == 400


def test_a_hostile_page_cannot_frame_the_dashboard(server: tuple[str, int, int], tmp_path: Path) -> None:
    base, _, pid = server
    target = f"{base}/proposals/{pid}"
    hostile = (f'<!doctype html><title>Win a prize</title><p>Click the button!</p>'
               f'<iframe id="victim" src="{target}" width="900" height="700"></iframe>')
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport=LAPTOP)
            page = context.new_page()
            sign_in(page, base, "dev0")  # the victim is signed in: their cookie is in this browser
            page.goto(target)
            assert page.get_by_test_id("vote-yes").count() == 1  # unframed, the page works
            with _hostile_site(hostile) as origin, page.expect_response(target) as framed:
                page.goto(f"{origin}/prize")  # the browser fetches the framed page, then refuses to show it
            assert framed.value.status == 200
            page.wait_for_load_state("load")
            [child] = [f for f in page.frames if f != page.main_frame]
            assert child.url.startswith("chrome-error://"), child.url
            frame = page.frame_locator("#victim")
            assert frame.locator("[data-testid=vote-yes]").count() == 0
            assert frame.locator("text=Proposal #").count() == 0
            page.screenshot(path=str(tmp_path / "framed.png"))
        finally:
            browser.close()


def test_pages_run_without_csp_violations(server: tuple[str, int, int]) -> None:
    base, _, pid = server
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_context(viewport=LAPTOP).new_page()
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            sign_in(page, base, "dev0")
            for path in ("/", "/datasets/1", "/dashboard", "/account", "/models", f"/proposals/{pid}"):
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
            # htmx still runs: the proposal page loads its comments and polls its tally.
            playwright_api.expect(page.locator("#comments")).to_be_attached()
            playwright_api.expect(page.get_by_test_id("outcome")).to_have_text("voting")
            assert not violations, violations
        finally:
            browser.close()


def test_no_page_is_wider_than_a_phone(server: tuple[str, int, int]) -> None:
    base, _, pid = server
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_context(viewport=PHONE, is_mobile=True).new_page()
            sign_in(page, base, "dev0")
            for path in ("/", "/datasets/1", "/dashboard", "/account", f"/proposals/{pid}", "/datasets/new"):
                page.goto(base + path)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{path} is {width} px wide"
            # The key columns of a proposal row are on screen: its status and tally, without scrolling sideways.
            page.goto(f"{base}/dashboard")
            for label in ("Status", "Tally"):
                box = page.locator(f"td[data-label={label}]").first.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], label
        finally:
            browser.close()
