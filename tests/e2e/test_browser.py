"""The dashboard in a real browser (Debian's chromium via Playwright) against ``databright serve``.

On the demo's home with one new, evaluated proposal and fresh revenue: two
shareholders sign in with local accounts, one comments, both vote, and each
sees the other's comment, the tally and the outcome change without a reload;
then the contributor withdraws revenue. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from databright.demo import write_png
from tests._servers import ROOT, free_port, rpc, stop

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
BIN = Path(sys.executable).parent / "databright"
SHOTS = ROOT / "test-artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


def cli(home: Path, *args: str) -> str:
    done = subprocess.run([str(BIN), "--home", str(home), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, str]]:
    home = tmp_path_factory.mktemp("web") / "home"
    cli(home, "demo")
    batch = home.parent / "batch"
    batch.mkdir()
    rng = np.random.default_rng(3)
    lines = ["file,label"]
    for i in range(12):
        (batch / f"new-{i}.png").write_bytes(write_png(rng.integers(0, 256, (8, 8), dtype=np.uint8)))
        lines.append(f"new-{i}.png,{i % 10}")
    (batch / "labels.csv").write_text("\n".join(lines) + "\n")
    out = cli(home, "--account", "dev8", "--json", "propose", "1", str(batch))
    proposal_id = int(re.search(r'"proposal_id": (\d+)', out).group(1))  # type: ignore[union-attr]
    cli(home, "--account", "dev9", "evaluate", str(proposal_id))
    cli(home, "--account", "dev10", "revenue", "deposit", "1", "2ether")
    port = free_port()
    # --dev: the test moves the chain's clock past the dataset's acceptance delay
    process = subprocess.Popen([str(BIN), "--home", str(home), "serve", "--port", str(port), "--dev"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    node = re.search(r"node (http://127\.0\.0\.1:\d+)", line)
    assert f"http://127.0.0.1:{port}/" in line and node, line
    try:
        yield f"http://127.0.0.1:{port}", proposal_id, node.group(1)
    finally:
        stop(process)
        assert process.returncode == 0
        assert not (home / "chain" / "node.json").exists()


def sign_in(page: object, base: str, account: str) -> None:
    page.goto(f"{base}/signin")  # type: ignore[attr-defined]
    page.select_option("#account", account)  # type: ignore[attr-defined]
    page.fill("#password", "databright")  # type: ignore[attr-defined]
    page.click("[data-testid=signin]")  # type: ignore[attr-defined]
    playwright_api.expect(page.get_by_test_id("whoami")).to_contain_text(account)  # type: ignore[attr-defined]


def shoot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_two_shareholders_discuss_vote_and_withdraw(server: tuple[str, int, str]) -> None:
    base, pid, node = server
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            alice_ctx = browser.new_context(viewport=LAPTOP)
            bob_ctx = browser.new_context(viewport=LAPTOP)
            alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
            sign_in(alice, base, "dev0")
            sign_in(bob, base, "dev1")

            # The dashboard lists the new proposal first, as awaiting Bob's vote.
            bob.goto(f"{base}/dashboard")
            expect(bob.locator(".card.highlight")).to_contain_text(f"#{pid}")
            shoot(bob, "dashboard-laptop")

            alice.goto(f"{base}/proposals/{pid}")
            bob.goto(f"{base}/proposals/{pid}")
            expect(bob.get_by_test_id("outcome")).to_have_text("voting")

            alice.fill("#body", "Twelve noisy images: the evaluation agrees they add little. Worth a look.")
            alice.click("[data-testid=comment-submit]")
            expect(alice.locator(".flash")).to_contain_text("Comment posted")
            # Bob sees the signed comment arrive without reloading.
            expect(bob.locator("#comments")).to_contain_text("Twelve noisy images", timeout=10_000)
            expect(bob.locator("#comments .sig.ok")).to_have_count(1)

            alice.click("[data-testid=vote-yes]")
            expect(alice.locator(".flash")).to_contain_text("You voted yes")
            expect(bob.get_by_test_id("yes")).to_have_text("1,969", timeout=10_000)

            bob.click("[data-testid=vote-yes]")
            expect(bob.locator(".flash")).to_contain_text("You voted yes with 562 shares")
            expect(alice.get_by_test_id("yes")).to_have_text("2,531", timeout=10_000)
            # A majority, not unanimity: early acceptance waits the dataset's ten minutes.
            expect(alice.get_by_test_id("outcome")).to_have_text("voting")
            rpc(node, "evm_increaseTime", [600])
            rpc(node, "evm_mine", [])
            expect(alice.get_by_test_id("outcome")).to_have_text("accepted when finalized", timeout=10_000)
            shoot(alice, "proposal-laptop")

            bob.click("[data-testid=finalize]")
            expect(bob.locator(".flash")).to_contain_text("is accepted")
            expect(alice.get_by_test_id("status")).to_have_text("accepted", timeout=10_000)

            # Bob, a contributor of the demo, withdraws the fee paid since.
            bob.goto(f"{base}/account")
            before = bob.get_by_test_id("withdrawable-1").inner_text()
            assert before != "0 ETH"
            bob.click("[data-testid=withdraw-1]")
            expect(bob.locator(".flash")).to_contain_text("Withdrew")
            expect(bob.get_by_test_id("withdrawable-1")).to_have_text("0 ETH")
            shoot(bob, "account-laptop")

            alice.goto(f"{base}/datasets/1")
            shoot(alice, "dataset-laptop")
            alice.goto(f"{base}/models")
            shoot(alice, "models-laptop")

            phone = browser.new_context(viewport=PHONE, is_mobile=True, device_scale_factor=2)
            page = phone.new_page()
            sign_in(page, base, "dev2")
            for path, name in [(f"/proposals/{pid}", "proposal-phone"), ("/datasets/1", "dataset-phone"),
                               ("/account", "account-phone")]:
                page.goto(base + path)
                time.sleep(0.3)
                shoot(page, name)
        finally:
            browser.close()
