"""The prediction server on a real (embedded) chain, through httpx: payment by
vouchers, 402s saying what is owed, bad input, durable vouchers and redemption."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from databright.chain import ModelMarket
from databright.errors import InputError, PaymentError
from databright.models import (
    PaymentGate,
    PaymentRequired,
    PredictionClient,
    Redeemer,
    ServedModel,
    SignedRecord,
    VoucherStore,
    create_app,
)
from databright.workspace import Workspace
from tests.unit.models.conftest import PRICE

MODEL = 1


@dataclass
class Setup:
    ws: Workspace
    mm: ModelMarket
    user: LocalAccount
    store: VoucherStore
    gate: PaymentGate
    http: TestClient
    client: PredictionClient
    rows: list[dict[str, Any]]


@pytest.fixture
def setup(ws: Workspace, model_home: tuple[Path, dict[str, Path]], tmp_path: Path) -> Iterator[Setup]:
    mm = ws.model_market
    store = VoucherStore(tmp_path / "vouchers.sqlite")
    gate = PaymentGate(mm, MODEL, store, ttl=0.0)
    app = create_app(ServedModel.load(mm, ws.store, MODEL), gate)
    rows = json.loads(pd.read_csv(model_home[1]["queries"]).drop(columns=["label"]).to_json(orient="records"))
    with TestClient(app) as http:
        user = ws.signer("dev3")
        client = PredictionClient("http://testserver", mm, user, SignedRecord(tmp_path / "signed.json"), http=http)
        yield Setup(ws, mm, user, store, gate, http, client, rows)
    store.close()


def test_paid_predictions_are_redeemed_with_the_royalty(setup: Setup, ws: Workspace) -> None:
    s = setup
    result = s.client.predict(MODEL, rows=s.rows[:3], deposit=1000 * PRICE)
    assert len(result.predictions) == 3 and result.paid == 3 * PRICE
    assert all(p["label"] in {str(d) for d in range(10)} for p in result.predictions)
    channel = result.channel
    assert channel is not None
    again = s.client.predict(MODEL, rows=s.rows[3:5])
    assert again.channel == channel and again.total == 5 * PRICE
    stored = s.store.get(channel)
    assert stored is not None and stored.amount == 5 * PRICE

    owner, dataset = ws.signer("dev1"), s.mm.model(MODEL).dataset_id
    revenue = ws.market.revenue_total(dataset)
    owner_before = ws.ledger.balance(owner.address)
    redeemer = Redeemer(s.gate, owner, threshold=10**30, deadline=10**9)
    assert redeemer.run_once() == 0  # neither threshold nor deadline reached
    assert redeemer.run_once(force=True) == 1
    assert s.mm.channel(channel).redeemed == 5 * PRICE
    assert ws.market.revenue_total(dataset) == revenue + 5 * PRICE // 10
    head = ws.ledger.block_number()
    (redeemed,) = [e for e in s.mm.events(head, head) if e.name == "VoucherRedeemed"]
    receipt = ws.ledger.w3.eth.get_transaction_receipt("0x" + redeemed.tx_hash)  # type: ignore[arg-type]
    gas = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert ws.ledger.balance(owner.address) - owner_before == 5 * PRICE - 5 * PRICE // 10 - gas
    assert s.store.unredeemed() == []
    # after a redemption the next voucher builds on what the chain paid
    assert s.client.predict(MODEL, rows=s.rows[:1]).total == 6 * PRICE


def test_redeems_at_threshold(setup: Setup, ws: Workspace) -> None:
    s = setup
    result = s.client.predict(MODEL, rows=s.rows[:4], deposit=100 * PRICE)
    redeemer = Redeemer(s.gate, ws.signer("dev1"), threshold=4 * PRICE, deadline=10**9)
    assert redeemer.run_once() == 1
    assert s.mm.channel(result.channel or 0).redeemed == result.total


def _post(s: Setup, rows: Any, voucher: str | None = None) -> Any:
    headers = {"X-Payment-Voucher": voucher} if voucher else {}
    return s.http.post(f"/v1/models/{MODEL}/predict", json={"rows": rows}, headers=headers)


def test_payment_required(setup: Setup) -> None:
    s = setup
    response = _post(s, s.rows[:2])
    assert response.status_code == 402
    assert response.json()["owed"] == 2 * PRICE and response.json()["price"] == PRICE
    channel = s.mm.open_channel(s.user, MODEL, 10 * PRICE)
    domain = s.gate.domain
    short = domain.sign(s.user, channel, 2 * PRICE - 1).to_header()
    body = _post(s, s.rows[:2], short).json()
    assert (body["owed"], body["previous"], body["channel"]) == (2 * PRICE, 0, channel)
    assert _post(s, s.rows[:2], domain.sign(s.user, channel, 2 * PRICE).to_header()).status_code == 200
    replay = _post(s, s.rows[:2], domain.sign(s.user, channel, 2 * PRICE).to_header())
    assert replay.status_code == 402 and replay.json()["owed"] == 4 * PRICE
    above = _post(s, s.rows[:1], domain.sign(s.user, channel, 11 * PRICE).to_header())
    assert above.status_code == 402 and "top it up" in above.json()["detail"]
    forged = _post(s, s.rows[:1], domain.sign(s.ws.signer("dev2"), channel, 3 * PRICE).to_header())
    assert forged.status_code == 402 and "not signed by the user" in forged.json()["detail"]
    assert _post(s, s.rows[:1], "1:2:0x00").status_code == 402
    assert _post(s, s.rows[:1], f"999:{PRICE}:0x" + "11" * 65).status_code == 402
    # the voucher may come as a JSON field as well
    field = s.http.post(f"/v1/models/{MODEL}/predict",
                        json={"rows": s.rows[:1], "voucher": domain.sign(s.user, channel, 3 * PRICE).to_header()})
    assert field.status_code == 200 and field.json()["payment"]["amount"] == 3 * PRICE
    stored = s.store.get(channel)
    assert stored is not None and stored.amount == 3 * PRICE


def test_bad_input_costs_nothing(setup: Setup) -> None:
    s = setup
    channel = s.mm.open_channel(s.user, MODEL, 10 * PRICE)
    voucher = s.gate.domain.sign(s.user, channel, PRICE).to_header()
    bad_row = _post(s, [{"p00": "not a number"}], voucher)
    assert bad_row.status_code == 400
    assert _post(s, "rows", voucher).status_code == 400
    assert _post(s, [], voucher).status_code == 400
    assert _post(s, [1, 2], voucher).status_code == 400
    assert s.http.post(f"/v1/models/{MODEL}/predict", content=b"{", headers={
        "content-type": "application/json"}).status_code == 400
    assert s.http.post(f"/v1/models/{MODEL}/predict", files={"files": ("a.png", b"x")}).status_code == 415
    assert s.http.post(f"/v1/models/{MODEL}/predict", content=b"x").status_code == 415
    assert s.http.post("/v1/models/2/predict", json={"rows": s.rows[:1]}).status_code == 404
    assert _post(s, s.rows[:1] * 257, voucher).status_code == 413
    assert s.store.get(channel) is None
    assert _post(s, s.rows[:1], voucher).status_code == 200


def test_a_deeply_nested_body_is_refused_not_a_crash(setup: Setup) -> None:
    # This process holds py-evm, which raises the recursion limit: json.loads of such a body would
    # overflow the C stack and kill the server with one unpaid request.
    assert sys.getrecursionlimit() >= 10_000
    deep = b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = setup.http.post(f"/v1/models/{MODEL}/predict", content=deep,
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not JSON" in response.json()["detail"]


def test_closing_channel_is_redeemed_and_takes_no_vouchers(setup: Setup, ws: Workspace) -> None:
    s = setup
    channel = s.mm.open_channel(s.user, MODEL, 10 * PRICE)
    assert _post(s, s.rows[:2], s.gate.domain.sign(s.user, channel, 2 * PRICE).to_header()).status_code == 200
    s.mm.close(s.user, channel)
    response = _post(s, s.rows[:1], s.gate.domain.sign(s.user, channel, 3 * PRICE).to_header())
    assert response.status_code == 402 and "closing" in response.json()["detail"]
    with pytest.raises(InputError, match="not an open channel"):
        s.client.predict(MODEL, rows=s.rows[:1], channel=channel)
    # a closing channel is due at once, whatever the threshold and deadline
    assert Redeemer(s.gate, ws.signer("dev1"), threshold=10**30, deadline=10**9).run_once() == 1
    assert s.mm.channel(channel).redeemed == 2 * PRICE


def test_client_rejects(setup: Setup, tmp_path: Path) -> None:
    s = setup
    fresh = s.ws.signer("dev0")  # no channels yet
    client = PredictionClient("http://testserver", s.mm, fresh, SignedRecord(tmp_path / "dev0.json"), http=s.http)
    with pytest.raises(InputError, match="not both"):
        client.predict(MODEL)
    with pytest.raises(PaymentRequired, match="no open channel"):
        client.predict(MODEL, rows=s.rows[:3])
    with pytest.raises(InputError, match="cannot pay"):
        client.predict(MODEL, rows=s.rows[:3], deposit=PRICE)
    channel = s.mm.open_channel(fresh, MODEL, PRICE)
    with pytest.raises(PaymentRequired, match="top it up"):
        client.predict(MODEL, rows=s.rows[:2], channel=channel)
    with pytest.raises(InputError, match="belongs to"):
        s.client.predict(MODEL, rows=s.rows[:1], channel=channel)
    other = PredictionClient("http://127.0.0.1:9", s.mm, s.user, s.client.record)
    with pytest.raises(PaymentError, match="cannot reach"):
        other.info(MODEL)


def test_info_and_openapi(setup: Setup) -> None:
    s = setup
    info = s.http.get(f"/v1/models/{MODEL}").json()
    assert info["price"] == PRICE and info["input"] == "table" and info["payments"]
    assert info["domain"] == {"name": "DataBright ModelMarket", "version": "1",
                              "chainId": s.ws.ledger.chain_id, "verifyingContract": s.mm.address}
    doc = s.http.get("/openapi.json").json()
    body = doc["paths"]["/v1/models/{model_id}/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert "402" in doc["paths"]["/v1/models/{model_id}/predict"]["post"]["responses"]


def test_image_predictions(ws: Workspace, model_home: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    mm = ws.model_market
    store = VoucherStore(tmp_path / "images.sqlite")
    gate = PaymentGate(mm, 2, store)
    served = ServedModel.load(mm, ws.store, 2)
    assert served.spec.input == "image"
    files = sorted(model_home[1]["image_queries"].glob("*.png"))
    with TestClient(create_app(served, gate)) as http:
        client = PredictionClient("http://testserver", mm, ws.signer("dev3"), SignedRecord(tmp_path / "s.json"),
                                  http=http)
        result = client.predict(2, files=files, deposit=100 * PRICE)
        assert len(result.predictions) == len(files) and result.paid == len(files) * PRICE
        assert http.post("/v1/models/2/predict", json={"rows": [{}]}).status_code == 415
        broken = http.post("/v1/models/2/predict", files={"files": ("x.png", b"not an image")})
        assert broken.status_code == 400
        with pytest.raises(InputError, match="not both"):
            client.predict(2, files=files, rows=[{}])
    stored = store.get(result.channel or 0)
    assert stored is not None and stored.amount == result.total
    store.close()


def test_free_server(ws: Workspace) -> None:
    app = create_app(ServedModel.load(ws.model_market, ws.store, MODEL), None)
    with TestClient(app) as http:
        row = {f"p{i:02d}": 0.0 for i in range(64)}
        response = http.post(f"/v1/models/{MODEL}/predict", json={"rows": [row]})
    assert response.status_code == 200 and response.json()["payment"] is None
