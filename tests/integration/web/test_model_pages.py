"""The model registry and model pages on a real (embedded) chain with a real prediction server:
the registry ranks by verified score, a model page shows its versions and revenue, and "try it"
pays through a payment channel — signed by the server for a local session, by the wallet for a
wallet session, whose vouchers must be its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from databright.models import VoucherDomain
from databright.web import DEFAULT_HOSTS, create_app
from databright.workspace import Workspace
from tests.integration.web.conftest import csrf, sign_in
from tests.integration.web.models_home import PRICE, build_home, prediction_server, query_rows
from tests.integration.web.test_wallet_writes import send, siwe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    return build_home(tmp_path_factory.mktemp("model-pages"))


@pytest.fixture(scope="module")
def ws(model_home: tuple[Path, dict[str, Path]]) -> Iterator[Workspace]:
    workspace = Workspace(model_home[0])
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def server(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with prediction_server(ws, 1, tmp_path_factory.mktemp("vouchers") / "v.sqlite") as url:
        yield url


@pytest.fixture()
def client(ws: Workspace, server: str) -> Iterator[TestClient]:
    app = create_app(ws, secret="test-secret", allowed_hosts=[*DEFAULT_HOSTS, "testserver"], model_servers={1: server})
    with TestClient(app) as http:
        yield http


def _rows_text(paths: dict[str, Path], count: int) -> str:
    rows = query_rows(paths, count)
    header = list(rows[0])
    return "\n".join([",".join(header), *(",".join(str(r[c]) for c in header) for r in rows)])


def test_the_registry_lists_registered_models(client: TestClient) -> None:
    page = client.get("/models").text
    row = re.search(r'<tr data-testid="model-1">.*?</tr>', page, re.S)
    assert row is not None
    assert "digits" in row.group(0) and "10%" in row.group(0) and "0.000001 ETH" in row.group(0)
    verified = re.search(r'data-testid="verified-1"><b>([\d.]+)%</b>', row.group(0))
    assert verified is not None and 0 < float(verified.group(1)) <= 100
    assert "Evaluators' reference models" in page
    assert 'data-testid="model-1"' not in client.get("/models?dataset=9").text


def test_the_registry_ranks_by_verified_score(client: TestClient) -> None:
    page = client.get("/models").text
    order = re.findall(r'<tr data-testid="model-(\d+)">', page)
    assert order == ["1", "2"]
    unverified = re.search(r'<tr data-testid="model-2">.*?</tr>', page, re.S)
    assert unverified is not None and "not yet" in unverified.group(0) and "20%" in unverified.group(0)


def test_a_model_page_shows_its_versions_and_scores(client: TestClient, ws: Workspace) -> None:
    page = client.get("/models/1").text
    version = ws.model_market.version(1, 1)
    assert 'data-testid="versions"' in page and "v1" in page
    assert "Verification report" in page and page.count('href="/blobs/') >= 3
    assert ws.model_market.verification(1, 1).verified and f"{version.claimed_score / 10_000:.2f}%" in page
    assert client.get("/models/99").status_code == 404
    assert client.get("/models/0").status_code == 422


def test_local_try_it_pays_through_a_channel(client: TestClient, ws: Workspace,
                                             model_home: tuple[Path, dict[str, Path]]) -> None:
    headers = sign_in(client, "dev3")
    before = ws.ledger.balance(ws.signer("dev3").address)
    reply = client.post("/models/1/try", data={"csrf_token": headers["X-CSRF-Token"], "deposit_eth": "0.001",
                                               "rows": _rows_text(model_home[1], 3)}, follow_redirects=False)
    assert reply.status_code == 303, reply.text
    page = client.get(reply.headers["location"]).text
    assert 'data-testid="result"' in page and page.count('data-testid="label"') == 3
    assert re.search(r'data-testid="paid">0.000003 ETH<', page)
    channels = [c for c in ws.model_market.channels_of(ws.signer("dev3").address) if c.model_id == 1]
    assert len(channels) == 1 and channels[0].deposit == 10**15
    assert ws.ledger.balance(ws.signer("dev3").address) < before - 10**15 + 1  # the deposit left the account
    # The next request reuses the channel: the cumulative voucher grows by the cost.
    page = client.post("/models/1/try", data={"csrf_token": headers["X-CSRF-Token"],
                                              "rows": _rows_text(model_home[1], 2)}).text
    assert "0.000005 ETH signed in total" in page
    assert len([c for c in ws.model_market.channels_of(ws.signer("dev3").address) if c.model_id == 1]) == 1


def test_try_it_refuses_bad_input_before_paying(client: TestClient, model_home: tuple[Path, dict[str, Path]]) -> None:
    headers = sign_in(client, "dev3")
    for rows, message in [("p00\nx", "not a number"), ("nope\n1", "unknown column"), ("", "header line")]:
        reply = client.post("/models/1/try", data={"csrf_token": headers["X-CSRF-Token"], "rows": rows})
        assert reply.status_code == 200 and message in reply.text, rows
    reply = client.post("/models/1/try", data={"csrf_token": headers["X-CSRF-Token"], "deposit_eth": "-1",
                                               "rows": _rows_text(model_home[1], 1)})
    assert "positive amount" in reply.text


def test_the_pay_form_needs_the_csrf_token(client: TestClient, ws: Workspace,
                                          model_home: tuple[Path, dict[str, Path]]) -> None:
    sign_in(client, "dev4")
    reply = client.post("/models/1/try", data={"csrf_token": "forged", "deposit_eth": "0.001",
                                               "rows": _rows_text(model_home[1], 1)})
    assert reply.status_code == 403 and "CSRF" in reply.text
    assert not list(ws.model_market.channels_of(ws.signer("dev4").address))


def _wallet(ws: Workspace) -> LocalAccount:
    """A fresh browser-wallet account, funded by dev0."""
    wallet: LocalAccount = Account.create()
    w3 = ws.ledger.w3
    tx = {"to": wallet.address, "value": 10**18, "gas": 21_000, "chainId": ws.ledger.chain_id, "type": 2,
          "nonce": w3.eth.get_transaction_count(ws.signer("dev0").address, "pending"),
          "maxFeePerGas": 2 * 10**10, "maxPriorityFeePerGas": 10**9}
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(
        ws.signer("dev0").sign_transaction(tx).raw_transaction))
    return wallet


def _sign(wallet: LocalAccount, typed: dict[str, Any]) -> str:
    """What a wallet's eth_signTypedData_v4 returns for the quote's typed data."""
    return wallet.sign_message(encode_typed_data(full_message=typed)).signature.to_0x_hex()


def test_wallet_try_it_signs_the_voucher_in_the_wallet(client: TestClient, ws: Workspace,
                                                       model_home: tuple[Path, dict[str, Path]]) -> None:
    wallet = _wallet(ws)
    headers = siwe(client, wallet)
    rows = _rows_text(model_home[1], 2)
    assert client.post("/api/v1/models/1/try/quote", json={"items": 2}, headers=headers).status_code == 402
    first = client.post("/api/v1/models/1/try/quote", json={"items": 2, "deposit_wei": 10**15}, headers=headers)
    assert first.status_code == 200 and first.json()["open_tx"]["value"] == hex(10**15), first.text
    confirmed = client.post("/api/v1/transactions", json={"tx_hash": send(ws, wallet, first.json()["open_tx"])},
                            headers=headers)
    assert confirmed.status_code == 200 and "ChannelOpened" in confirmed.json()["events"], confirmed.text
    quote = client.post("/api/v1/models/1/try/quote", json={"items": 2}, headers=headers).json()
    assert quote["amount_wei"] == 2 * PRICE and quote["typed_data"]["primaryType"] == "Voucher"
    voucher = f"{quote['channel']}:{quote['amount_wei']}:{_sign(wallet, quote['typed_data'])}"
    reply = client.post("/api/v1/models/1/try", data={"rows": rows, "voucher": voucher}, headers=headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["paid_wei"] == 2 * PRICE and len(body["predictions"]) == 2 and body["channel"] == quote["channel"]
    # The same voucher again pays nothing more: the quote has moved on.
    again = client.post("/api/v1/models/1/try", data={"rows": rows, "voucher": voucher}, headers=headers)
    assert again.status_code == 402 and "new quote" in again.json()["error"]
    assert client.post("/api/v1/models/1/try/quote", json={"items": 1}, headers=headers).json()["amount_wei"] == (
        3 * PRICE)


def test_a_voucher_for_someone_elses_channel_is_refused(client: TestClient, ws: Workspace,
                                                        model_home: tuple[Path, dict[str, Path]]) -> None:
    dev3 = [c for c in ws.model_market.channels_of(ws.signer("dev3").address) if c.model_id == 1]
    assert dev3, "the local test opened dev3's channel"
    victim = dev3[0].channel_id
    wallet = _wallet(ws)
    headers = siwe(client, wallet)
    domain = VoucherDomain(ws.ledger.chain_id, ws.model_market.address)
    rows = _rows_text(model_home[1], 1)
    # Signed by the attacker for the victim's channel, and signed by the victim but posted by the attacker.
    for signer in (wallet, ws.signer("dev3")):
        voucher = domain.sign(signer, victim, 10**14).to_header()
        reply = client.post("/api/v1/models/1/try", data={"rows": rows, "voucher": voucher}, headers=headers)
        assert reply.status_code == 403 and "not yours" in reply.json()["error"]
    # A voucher the wallet signed for its own channel but that someone else signed is refused too.
    first = client.post("/api/v1/models/1/try/quote", json={"items": 1, "deposit_wei": 10**15}, headers=headers)
    client.post("/api/v1/transactions", json={"tx_hash": send(ws, wallet, first.json()["open_tx"])}, headers=headers)
    quote = client.post("/api/v1/models/1/try/quote", json={"items": 1}, headers=headers).json()
    forged = domain.sign(Account.create(), quote["channel"], quote["amount_wei"]).to_header()
    reply = client.post("/api/v1/models/1/try", data={"rows": rows, "voucher": forged}, headers=headers)
    assert reply.status_code == 403 and "not signed by" in reply.json()["error"]
    no_token = client.post("/api/v1/models/1/try", data={"rows": rows, "voucher": forged},
                           headers={"X-CSRF-Token": "forged"})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]


def test_no_prediction_server_is_a_clear_error(ws: Workspace, model_home: tuple[Path, dict[str, Path]]) -> None:
    app = create_app(ws, secret="test-secret", allowed_hosts=[*DEFAULT_HOSTS, "testserver"])
    with TestClient(app) as http:
        headers = sign_in(http, "dev3")
        reply = http.post("/api/v1/models/1/try/quote", json={"items": 1}, headers=headers)
        assert reply.status_code == 402 and "databright model serve 1" in reply.json()["error"]
        assert csrf(http)


def _advance(ws: Workspace, seconds: int) -> None:
    provider = ws.ledger.w3.provider
    provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_the_account_page_shows_my_channels_and_settles_them(client: TestClient, ws: Workspace) -> None:
    headers = sign_in(client, "dev3")
    dev3 = ws.signer("dev3").address
    channel = next(c for c in ws.model_market.channels_of(dev3) if c.model_id == 1 and c.state == "open")
    page = client.get("/account").text
    row = re.search(rf'<tr data-testid="channel-{channel.channel_id}">.*?</tr>', page, re.S)
    assert row is not None and "open" in row.group(0) and f'data-testid="close-{channel.channel_id}"' in row.group(0)
    # Spent is what dev3 signed (5 predictions), even before the owner redeems it.
    assert "0.000005 ETH" in row.group(0) and re.search(r'data-testid="refundable-\d+">0.000995 ETH<', row.group(0))
    token = headers["X-CSRF-Token"]
    early = client.post(f"/account/channels/{channel.channel_id}/settle", data={"csrf_token": token}).text
    assert "close channel" in early
    closing = client.post(f"/account/channels/{channel.channel_id}/close", data={"csrf_token": token}).text
    assert "is closing" in closing and ws.model_market.channel(channel.channel_id).state == "closing"
    assert "can be settled in" in client.post(f"/account/channels/{channel.channel_id}/settle",
                                               data={"csrf_token": token}).text
    _advance(ws, 86_401)
    balance = ws.ledger.balance(dev3)
    settled = client.post(f"/account/channels/{channel.channel_id}/settle", data={"csrf_token": token}).text
    assert "settled: 0.001 ETH refunded" in settled, re.findall(r'role="status">([^<]*)', settled)
    assert ws.model_market.channel(channel.channel_id).settled and ws.ledger.balance(dev3) > balance
    other = sign_in(client, "dev4")
    reply = client.post(f"/api/v1/channels/{channel.channel_id}/close/tx", headers=other)
    assert reply.status_code == 403 and "not yours" in reply.json()["error"]


def test_the_account_page_shows_my_models(client: TestClient) -> None:
    sign_in(client, "dev1")
    page = client.get("/account").text
    assert 'data-testid="my-models"' in page and 'href="/models/1"' in page


def test_redeemed_payments_show_as_revenue_by_source(client: TestClient, ws: Workspace) -> None:
    mm, user, owner = ws.model_market, ws.signer("dev4"), ws.signer("dev1")
    channel = mm.open_channel(user, 1, 100 * PRICE)
    voucher = VoucherDomain(ws.ledger.chain_id, mm.address).sign(user, channel, 10 * PRICE)
    before = client.get("/models/1").text
    predictions = int(re.search(r'data-testid="predictions">([\d,]+)<', before).group(1).replace(",", ""))  # type: ignore[union-attr]
    mm.redeem(owner, channel, voucher.amount, voucher.signature)
    client.app.state.web.refresh()  # type: ignore[attr-defined]
    page = client.get("/datasets/1").text
    assert re.search(r'data-testid="revenue-training">0.2 ETH<', page)  # two models registered
    assert re.search(r'data-testid="revenue-royalties">0.000001 ETH<', page)  # 10% of 10 predictions
    assert 'data-testid="impact-1"><span class="muted">—' in page
    model = client.get("/models/1").text
    assert re.search(rf'data-testid="predictions">{predictions + 10}<', model)
    assert re.search(r'data-testid="royalties">0.000001 ETH<', model)
    assert re.search(r'data-testid="royalties-1">0.000001 ETH<', client.get("/models").text)


def test_the_registry_is_paged(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from databright.web.routers import model_pages

    monkeypatch.setattr(model_pages, "PER_PAGE", 1)
    first, second = client.get("/models").text, client.get("/models?page=2").text
    assert re.findall(r'<tr data-testid="model-(\d+)">', first) == ["1"] and 'href="?page=2"' in first
    assert re.findall(r'<tr data-testid="model-(\d+)">', second) == ["2"] and "page 2 of 2" in second
    assert client.get("/models?page=0").status_code == 422


def test_a_wallet_session_cannot_use_the_server_signed_form(client: TestClient, ws: Workspace,
                                                            model_home: tuple[Path, dict[str, Path]]) -> None:
    wallet = Account.create()
    headers = siwe(client, wallet)
    reply = client.post("/models/1/try", data={"csrf_token": headers["X-CSRF-Token"], "deposit_eth": "0.001",
                                               "rows": _rows_text(model_home[1], 1)})
    assert reply.status_code == 403 and "holds no key" in reply.text
    assert not list(ws.model_market.channels_of(wallet.address))


def test_the_account_page_shows_what_models_paid_the_data_owner(client: TestClient) -> None:
    sign_in(client, "dev0")  # created the dataset: its seed's contributor and shareholder
    page = client.get("/account").text
    assert 'data-testid="models-paid"' in page and 'href="/models/1"' in page
    assert re.search(r"Training fee to me", page)
