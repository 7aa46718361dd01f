"""A browser-wallet user in a real browser (Debian's chromium via Playwright) against ``databright serve``.

The page gets an injected EIP-1193 provider before it loads; its ``request``
calls Python, which holds the dataset creator's key like a wallet would: it
signs the Sign-In with Ethereum message, starts on another chain (so the page
must ask it to switch, and add the node it is told about), and signs and sends
each prepared transaction to that node's JSON-RPC URL. The user signs in,
votes, finalizes and withdraws from the page, and proposes a batch of
uploaded files; the receipts, the index and the balance show each was a real
transaction sent by the wallet.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from web3 import Web3

from tests._servers import free_port, rpc, stop
from tests.e2e.test_browser import ARGS, BIN, CHROMIUM, LAPTOP, cli, playwright_api, shoot

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")

PROVIDER = """
window.ethereum = {
  isDataBrightTestWallet: true,
  async request({ method, params }) {
    const reply = JSON.parse(await window.pyWallet(method, JSON.stringify(params || [])));
    if (reply.error) { const e = new Error(reply.error.message); e.code = reply.error.code; throw e; }
    return reply.result;
  },
};
"""


class WalletError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class TestWallet:
    """The Python side of the injected provider: one account, the chains it was told about."""

    __test__ = False

    def __init__(self, account: LocalAccount) -> None:
        self.account = account
        self.chain_id = 1  # starts elsewhere, as a wallet usually does
        self.chains: dict[int, str] = {}
        self.sent: list[str] = []
        self.reject_next = False

    def request(self, method: str, params_json: str) -> str:
        try:
            return json.dumps({"result": self._handle(method, json.loads(params_json))})
        except WalletError as exc:
            return json.dumps({"error": {"code": exc.code, "message": str(exc)}})

    def _handle(self, method: str, params: list[Any]) -> Any:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.account.address]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "personal_sign":
            message, address = params
            assert Web3.to_checksum_address(address) == self.account.address
            signable = encode_defunct(hexstr=message) if message.startswith("0x") else encode_defunct(text=message)
            return self.account.sign_message(signable).signature.to_0x_hex()
        if method == "wallet_switchEthereumChain":
            chain = int(params[0]["chainId"], 16)
            if chain not in self.chains:
                raise WalletError(4902, f"unrecognized chain id {params[0]['chainId']}")
            self.chain_id = chain
            return None
        if method == "wallet_addEthereumChain":
            self.chains[int(params[0]["chainId"], 16)] = params[0]["rpcUrls"][0]
            self.chain_id = int(params[0]["chainId"], 16)
            return None
        if method == "eth_sendTransaction":
            if self.reject_next:
                self.reject_next = False
                raise WalletError(4001, "User rejected the request.")
            return self._send(params[0])
        raise WalletError(4200, f"unsupported method {method}")

    def _send(self, tx: dict[str, str]) -> str:
        assert Web3.to_checksum_address(tx["from"]) == self.account.address
        assert int(tx["chainId"], 16) == self.chain_id, "the page sent a transaction for another chain"
        w3 = Web3(Web3.HTTPProvider(self.chains[self.chain_id]))
        base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        fields = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16), "chainId": self.chain_id,
                  "gas": int(tx["gas"], 16), "nonce": w3.eth.get_transaction_count(self.account.address, "pending"),
                  "maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * base_fee + 10**9, "type": 2}
        tx_hash = w3.eth.send_raw_transaction(self.account.sign_transaction(fields).raw_transaction).to_0x_hex()
        self.sent.append(tx_hash)
        return tx_hash


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, int, LocalAccount, int]]:
    """A dataset of dev0's, dev2's open proposal, revenue deposited; served by ``databright serve``."""
    from databright.chain import DatasetParams
    from databright.operations import DatasetMetadata, create_dataset, load_batch, propose_batch
    from databright.workspace import Workspace
    from tests.integration.web.conftest import write_batch

    root = tmp_path_factory.mktemp("wallet")
    home = root / "home"
    cli(home, "init", "--accounts", "4")
    cli(home, "deploy")
    ws = Workspace(home)
    try:
        wallet = ws.signer("dev0")
        meta = DatasetMetadata("shapes", "Tiny test images.", "files", ("a", "b"), "CC0")
        params = DatasetParams(metadata_digest=b"\0" * 32, initial_shares=1000, base_reward_per_item=10)
        seed = load_batch(ws, write_batch(root / "seed", list("abab"), 1))
        dataset_id, _ = create_dataset(ws, wallet, meta, params, seed=seed)
        batch = load_batch(ws, write_batch(root / "batch", list("aabb"), 2))
        proposal_id, _ = propose_batch(ws, ws.signer("dev2"), dataset_id, batch)
        ws.market.deposit(ws.signer("dev3"), dataset_id, 10**18)
        bond = ws.market.dataset(dataset_id).proposal_bond
    finally:
        ws.close()
    port = free_port()
    process = subprocess.Popen([str(BIN), "--home", str(home), "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    node = re.search(r"node (http://127\.0\.0\.1:\d+)", line)
    assert f"http://127.0.0.1:{port}/" in line and node, line
    try:
        yield f"http://127.0.0.1:{port}", node.group(1), proposal_id, wallet, bond
    finally:
        stop(process)  # type: ignore[arg-type]
        assert process.returncode == 0


def api(base: str, path: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(base + path, timeout=10) as reply:
        return json.loads(reply.read())


@contextlib.contextmanager
def wallet_page(wallet: TestWallet) -> Iterator[Any]:
    """A chromium page whose injected EIP-1193 provider is ``wallet``."""
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport=LAPTOP)
            context.expose_function("pyWallet", wallet.request)
            context.add_init_script(PROVIDER)
            yield context.new_page()
        finally:
            browser.close()


def test_wallet_user_votes_finalizes_and_withdraws(scenario: tuple[str, str, int, LocalAccount, int]) -> None:
    base, node, pid, account, _ = scenario
    expect = playwright_api.expect
    wallet = TestWallet(account)
    with wallet_page(wallet) as page:
        message = page.locator("#wallet-message")

        page.goto(f"{base}/signin?next=/proposals/{pid}")
        page.click("#siwe")
        expect(page.get_by_test_id("whoami")).to_contain_text(account.address[:6])
        expect(page.get_by_test_id("outcome")).to_have_text("voting")

        page.click("[data-testid=vote-yes]")
        expect(message).to_have_text("You voted yes with 1,040 shares.", timeout=20_000)
        # The wallet was on chain 1: the page had it add the node it serves, then switch to it.
        assert wallet.chain_id == api(base, "/api/v1/chain")["chain_id"] and wallet.chains == {wallet.chain_id: node}
        expect(page.get_by_test_id("yes")).to_have_text("1,040")
        expect(page.get_by_test_id("outcome")).to_have_text("accepted when finalized")
        shoot(page, "wallet-proposal-laptop")

        page.click("[data-testid=finalize]")
        expect(message).to_have_text(f"Proposal {pid} is accepted.", timeout=20_000)
        expect(page.get_by_test_id("status")).to_have_text("accepted")

        page.goto(f"{base}/account")
        pending = {h["dataset_id"]: h for h in api(base, f"/api/v1/accounts/{account.address}")["holdings"]}[1]
        assert pending["withdrawable_wei"] > 0
        expect(page.get_by_test_id("withdrawable-1")).not_to_have_text("0 ETH")
        wallet.reject_next = True
        page.click("[data-testid=withdraw-1]")
        expect(message).to_have_text("You rejected the request in your wallet.", timeout=20_000)
        expect(message).to_have_class(re.compile(r"\berror\b"))
        before = int(rpc(node, "eth_getBalance", [account.address, "latest"]), 16)
        page.click("[data-testid=withdraw-1]")
        expect(message).to_contain_text("Withdrew", timeout=20_000)
        expect(page.get_by_test_id("withdrawable-1")).to_have_text("0 ETH")
        shoot(page, "wallet-account-laptop")

    # Three real transactions, each sent by the wallet to the market, each mined successfully.
    contract = api(base, "/api/v1/chain")["contract"]
    receipts = [rpc(node, "eth_getTransactionReceipt", [h]) for h in wallet.sent]
    assert len(receipts) == 3 and all(r["status"] == "0x1" for r in receipts)
    assert all(Web3.to_checksum_address(r["from"]) == account.address and
               Web3.to_checksum_address(r["to"]) == contract for r in receipts)
    assert api(base, f"/api/v1/proposals/{pid}")["status"] == "accepted"
    after = int(rpc(node, "eth_getBalance", [account.address, "latest"]), 16)
    last = receipts[-1]
    assert after == before + pending["withdrawable_wei"] - int(last["gasUsed"], 16) * int(last["effectiveGasPrice"], 16)
    holding = {h["dataset_id"]: h for h in api(base, f"/api/v1/accounts/{account.address}")["holdings"]}[1]
    assert holding["withdrawable_wei"] == 0
    assert holding["withdrawn_wei"] == pending["withdrawn_wei"] + pending["withdrawable_wei"]


def test_wallet_user_proposes_uploaded_files(scenario: tuple[str, str, int, LocalAccount, int],
                                            tmp_path: Path) -> None:
    from tests.integration.web.conftest import write_batch

    base, node, _, account, bond = scenario
    expect = playwright_api.expect
    wallet = TestWallet(account)
    bad = write_batch(tmp_path / "bad", ["a", "z"], 31)
    good = write_batch(tmp_path / "good", ["b", "a", "b"], 32)
    count = len(api(base, "/api/v1/proposals"))
    with wallet_page(wallet) as page:
        message = page.locator("#wallet-message")

        page.goto(f"{base}/signin?next=/datasets/1/propose")
        page.click("#siwe")
        expect(page.get_by_test_id("whoami")).to_contain_text(account.address[:6])

        # A label the dataset does not have: refused before the wallet is asked.
        page.set_input_files("#files", sorted(bad.glob("*.png")))
        page.set_input_files("#labels", bad / "labels.csv")
        page.click("[data-testid=propose-submit]")
        expect(message).to_have_text(
            "labels.csv line 3 (img-1.png): label 'z' is not one of the dataset's labels: a, b", timeout=20_000)
        expect(message).to_have_class(re.compile(r"\berror\b"))
        assert wallet.sent == [] and len(api(base, "/api/v1/proposals")) == count

        page.set_input_files("#files", sorted(good.glob("*.png")))
        page.set_input_files("#labels", good / "labels.csv")
        before = int(rpc(node, "eth_getBalance", [account.address, "latest"]), 16)
        page.click("[data-testid=propose-submit]")
        new = count + 1
        expect(message).to_have_text(f"Proposal {new} submitted: 3 items.", timeout=20_000)
        assert page.url == f"{base}/proposals/{new}"
        expect(page.get_by_test_id("status")).to_have_text("open")
        expect(page.locator("figure.thumb")).to_have_count(3)
        shoot(page, "wallet-propose-laptop")

    # Two real transactions from the wallet: the commitment, then the reveal carrying the bond; the
    # index shows the proposal and its items.
    assert len(wallet.sent) == 2
    receipts = [rpc(node, "eth_getTransactionReceipt", [h]) for h in wallet.sent]
    assert all(r["status"] == "0x1" and Web3.to_checksum_address(r["from"]) == account.address for r in receipts)
    assert int(receipts[0]["blockNumber"], 16) < int(receipts[1]["blockNumber"], 16)
    fees = sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for r in receipts)
    after = int(rpc(node, "eth_getBalance", [account.address, "latest"]), 16)
    assert after == before - bond - fees
    proposal = api(base, f"/api/v1/proposals/{new}")
    assert proposal["contributor"] == account.address and proposal["items"] == 3 and proposal["bond_wei"] == bond


def test_wallet_user_creates_a_dataset_and_proposes_with_signed_details(
        scenario: tuple[str, str, int, LocalAccount, int], tmp_path: Path) -> None:
    from tests.integration.web.conftest import write_batch

    base, _, _, account, _ = scenario
    expect = playwright_api.expect
    wallet = TestWallet(account)
    batch = write_batch(tmp_path / "batch", ["a", "b"], 33)
    with wallet_page(wallet) as page:
        message = page.locator("#wallet-message")
        page.goto(f"{base}/signin?next=/datasets/new")
        page.click("#siwe")
        expect(page.get_by_test_id("whoami")).to_contain_text(account.address[:6])
        page.fill("#name", "Field notes")
        page.fill("#labels", "a, b")
        page.fill("#contributor_fields", "affiliation, country")
        page.click("[data-testid=create-dataset]")
        expect(page.locator("h1")).to_have_text(re.compile("Field notes"), timeout=20_000)
        dataset_id = int(page.url.rsplit("/", 1)[1])
        assert api(base, f"/api/v1/datasets/{dataset_id}")["creator"] == account.address

        page.goto(f"{base}/datasets/{dataset_id}/propose")
        page.fill("#detail-1", "Uni Bern")
        page.fill("#detail-2", "Switzerland")
        page.set_input_files("#files", sorted(batch.glob("*.png")))
        page.set_input_files("#labels", batch / "labels.csv")
        page.click("[data-testid=propose-submit]")
        expect(message).to_contain_text("submitted: 2 items.", timeout=20_000)
        details = page.get_by_test_id("contributor-details")
        expect(details).to_contain_text("Uni Bern")
        expect(details.locator(".sig.ok")).to_have_count(1)  # the wallet's signature of the text wallet.js built
    assert len(wallet.sent) == 3  # the dataset, then the proposal's commitment and reveal
