"""The model pages in a real browser (Debian's chromium via Playwright): ``databright model serve``
and ``databright serve`` as processes, a local user and a wallet user each buying predictions
through a payment channel from the model page's "try it" form.

The wallet user's provider is injected as in test_browser_wallet.py and also answers
``eth_signTypedData_v4``: it signs the voucher the page asks for, and the test checks it
signed exactly the EIP-712 ``Voucher`` the contract verifies. Screenshots at laptop and
phone width go to test-artifacts/screenshots (models, model, account, compute).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from tests._servers import free_port, stop
from tests.e2e.test_browser import ARGS, BIN, CHROMIUM, LAPTOP, PHONE, playwright_api, shoot, sign_in
from tests.e2e.test_browser_wallet import TestWallet, api, wallet_page
from tests.integration.web.compute_home import run_job
from tests.integration.web.models_home import PRICE, build_home, query_rows

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]


class TypedDataWallet(TestWallet):
    """The test wallet, able to sign EIP-712 typed data as ``eth_signTypedData_v4`` does."""

    __test__ = False

    def __init__(self, account: LocalAccount) -> None:
        super().__init__(account)
        self.typed: list[dict[str, Any]] = []

    def _handle(self, method: str, params: list[Any]) -> Any:
        if method == "eth_signTypedData_v4":
            address, data = params
            assert Web3.to_checksum_address(address) == self.account.address
            typed = json.loads(data)
            self.typed.append(typed)
            return self.account.sign_message(encode_typed_data(full_message=typed)).signature.to_0x_hex()
        return super()._handle(method, params)


def _rows_text(paths: dict[str, Path], count: int) -> str:
    rows = query_rows(paths, count)
    header = list(rows[0])
    return "\n".join([",".join(header), *(",".join(str(r[c]) for c in header) for r in rows)])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, Path]]]:
    from databright.workspace import Workspace

    home, paths = build_home(tmp_path_factory.mktemp("browser-models"))
    ws = Workspace(home)
    try:
        run_job(ws)  # a compute job for the compute page's screenshots
    finally:
        ws.close()
    announce = home / "models" / "serve-31415-1.json"
    # The model's server starts the node; the dashboard finds both through the home.
    model = subprocess.Popen([str(BIN), "--home", str(home), "--account", "dev1", "model", "serve", "1", "--port", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    web = None
    try:
        deadline = time.monotonic() + 120
        while True:
            assert model.poll() is None, model.stderr.read().decode() if model.stderr else ""
            try:
                httpx.get(json.loads(announce.read_text())["url"] + "/v1/models/1", timeout=5).raise_for_status()
                break
            except (OSError, ValueError, KeyError, httpx.HTTPError):
                assert time.monotonic() < deadline, "model serve did not start"
                time.sleep(0.3)
        port = free_port()
        web = subprocess.Popen([str(BIN), "--home", str(home), "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert web.stdout is not None
        line = web.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line
        yield f"http://127.0.0.1:{port}", home, paths
    finally:
        if web is not None:
            stop(web)  # type: ignore[arg-type]
        stop(model)


def test_a_local_user_buys_predictions_from_the_model_page(served: tuple[str, Path, dict[str, Path]]) -> None:
    base, _, paths = served
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_context(viewport=LAPTOP).new_page()
            sign_in(page, base, "dev3")
            page.goto(f"{base}/models")
            expect(page.get_by_test_id("model-1")).to_contain_text("digits")
            expect(page.get_by_test_id("verified-1")).to_contain_text("%")
            page.click("[data-testid=model-1] a[href='/models/1']")
            page.fill("[data-testid=try-rows]", _rows_text(paths, 3))
            page.fill("[data-testid=try-deposit]", "0.001")
            page.click("[data-testid=try-submit]")
            expect(page.get_by_test_id("result")).to_contain_text("Paid 0.000003 ETH through channel")
            expect(page.get_by_test_id("label")).to_have_count(3)
            page.evaluate("window.scrollTo(0, 0)")
            shoot(page, "model-laptop")
            page.goto(f"{base}/account")
            expect(page.get_by_test_id("channels")).to_contain_text("0.000997 ETH")
            page.goto(f"{base}/models")
            shoot(page, "models-laptop")
            page.goto(f"{base}/compute")
            expect(page.get_by_test_id("jobs")).to_contain_text("completed")
            shoot(page, "compute-laptop")
            phone = browser.new_context(viewport=PHONE).new_page()
            sign_in(phone, base, "dev3")
            for name, path in (("models-phone", "/models"), ("model-phone", "/models/1"),
                               ("account-models-phone", "/account"), ("compute-phone", "/compute")):
                phone.goto(base + path)
                shoot(phone, name)
            # A hostile page cannot make the signed-in user pay: its cross-site post carries neither the
            # session (SameSite) nor the CSRF token, and nothing is signed or opened.
            hostile = page.context.new_page()
            hostile.set_content(f'<form method="post" action="{base}/models/1/try" enctype="multipart/form-data">'
                                '<input name="rows" value="p00\n1"><input name="deposit_eth" value="1"></form>')
            hostile.eval_on_selector("form", "f => f.submit()")
            expect(hostile.locator("body")).to_contain_text(re.compile("sign in first|CSRF"))
            page.goto(f"{base}/account")
            expect(page.locator("[data-testid=channels] tbody tr")).to_have_count(1)
            expect(page.get_by_test_id("channels")).to_contain_text("0.000997 ETH")
        finally:
            browser.close()


def test_a_wallet_user_signs_the_voucher_in_the_wallet(served: tuple[str, Path, dict[str, Path]]) -> None:
    from databright.models import Voucher, VoucherDomain
    from databright.workspace import Workspace

    base, home, paths = served
    expect = playwright_api.expect
    chain = api(base, "/api/v1/chain")
    ws = Workspace(home, rpc_url=chain["rpc_url"])
    try:
        account = ws.signer("dev4")
        mm = ws.model_market
        wallet = TypedDataWallet(account)
        with wallet_page(wallet) as page:
            page.goto(f"{base}/signin?next=/models/1")
            page.click("#siwe")
            expect(page.get_by_test_id("whoami")).to_contain_text(account.address[:6])
            page.fill("[data-testid=try-rows]", _rows_text(paths, 2))
            page.fill("[data-testid=try-deposit]", "0.001")
            page.click("[data-testid=try-submit]")
            expect(page.get_by_test_id("result")).to_contain_text("Paid 0.000002 ETH", timeout=30_000)
            expect(page.get_by_test_id("label")).to_have_count(2)
            # The wallet sent the deposit itself and signed one voucher for exactly the cost.
            assert len(wallet.sent) == 1 and len(wallet.typed) == 1
            typed = wallet.typed[0]
            assert typed["primaryType"] == "Voucher" and typed["domain"]["verifyingContract"] == mm.address
            channel = int(typed["message"]["channel"])
            assert int(typed["message"]["amount"]) == 2 * PRICE
            on_chain = mm.channel(channel)
            assert on_chain.user == account.address and on_chain.deposit == 10**15
            # What it signed is a voucher the contract itself would accept from this user.
            signature = account.sign_message(encode_typed_data(full_message=typed)).signature
            domain = VoucherDomain(ws.ledger.chain_id, mm.address)
            assert domain.signer(Voucher(channel, 2 * PRICE, bytes(signature))) == account.address
            # The next request reuses the channel: no transaction, one more voucher.
            page.fill("[data-testid=try-rows]", _rows_text(paths, 1))
            page.click("[data-testid=try-submit]")
            expect(page.get_by_test_id("result")).to_contain_text("0.000003 ETH signed in total", timeout=30_000)
            assert len(wallet.sent) == 1 and int(wallet.typed[-1]["message"]["amount"]) == 3 * PRICE
            assert re.search(r"\d", page.get_by_test_id("predictions").inner_text())
    finally:
        ws.close()
