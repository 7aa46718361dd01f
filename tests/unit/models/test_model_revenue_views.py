"""Where the model market's money goes, as the CLI and the REST API show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from databright.models import VoucherDomain
from databright.web.app import DEFAULT_HOSTS, create_app
from databright.workspace import Workspace
from tests.unit.models.conftest import PRICE
from tests.unit.models.test_model_deploy import run

FEE = 10**17


@pytest.fixture(scope="module")
def paid_home(model_home: tuple[Path, dict[str, Path]]) -> Path:
    """dev3 buys 200 predictions of model 1 through a channel; dev1 (the owner) redeems them."""
    home = model_home[0]
    ws = Workspace(home)
    try:
        mm, user, owner = ws.model_market, ws.signer("dev3"), ws.signer("dev1")
        channel = mm.open_channel(user, 1, 300 * PRICE)
        voucher = VoucherDomain(ws.ledger.chain_id, mm.address).sign(user, channel, 200 * PRICE)
        mm.redeem(owner, channel, voucher.amount, voucher.signature)
    finally:
        ws.close()
    return home


def _json(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> dict[str, object]:
    code, out, err = run(capsys, home, *args, "--json")
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_dataset_show_names_revenue_by_source_and_models(paid_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = _json(capsys, paid_home, "dataset", "show", "1")
    assert shown["revenue_by_source_wei"] == {"training_fee": FEE, "royalty": 200 * PRICE // 10,
                                              "forfeited_bond": 0, "payment": 0}
    [model] = shown["models"]  # type: ignore[misc]
    assert (model["model_id"], model["predictions"], model["royalties_wei"]) == (1, 200, 20 * PRICE)
    code, out, _ = run(capsys, paid_home, "dataset", "show", "1")
    assert code == 0 and "royalty 0.00002 ETH" in out and "Models trained on it" in out


def test_model_list_and_show_read_the_index(paid_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = _json(capsys, paid_home, "model", "list")["models"]
    first = next(m for m in listed if m["model_id"] == 1)  # type: ignore[attr-defined]
    assert (first["predictions"], first["revenue_wei"], first["royalties_wei"]) == (200, 200 * PRICE, 20 * PRICE)
    shown = _json(capsys, paid_home, "model", "show", "1")
    assert shown["predictions"] == 200 and shown["redemptions"][0]["predictions"] == 200  # type: ignore[index]
    # dev0 holds every share of dataset 1: the whole training fee and royalty are credited to it.
    [holder] = shown["paid_to_holders"]  # type: ignore[misc]
    assert (holder["training_fee_wei"], holder["royalties_wei"]) == (FEE, 20 * PRICE)
    paid = _json(capsys, paid_home, "shares", "dev0")["models_paid"]
    assert {(p["model_id"], p["paid_wei"]) for p in paid} >= {(1, FEE + 20 * PRICE)}  # type: ignore[attr-defined]
    code, _, err = run(capsys, paid_home, "model", "show", "9")
    assert code == 1 and "unknown model: 9" in err


def test_api_models_revenue_and_channels(paid_home: Path) -> None:
    ws = Workspace(paid_home)
    try:
        with TestClient(create_app(ws, secret="s", allowed_hosts=[*DEFAULT_HOSTS, "testserver"])) as client:
            models = client.get("/api/v1/models").json()
            assert {m["model_id"] for m in models} == {1, 2}
            detail = client.get("/api/v1/models/1").json()
            assert detail["predictions"] == 200 and detail["history"][0]["version"] == 1
            assert detail["royalties"][0]["royalties_wei"] == 20 * PRICE
            assert client.get("/api/v1/models/7").status_code == 404
            revenue = client.get("/api/v1/datasets/1/revenue").json()
            assert (revenue["training_fee_wei"], revenue["royalty_wei"]) == (FEE, 20 * PRICE)
            assert revenue["total_wei"] == FEE + 20 * PRICE
            assert client.get("/api/v1/datasets/1").json()["revenue_by_source"]["royalty"] == 20 * PRICE
            user = ws.address_of("dev3")
            [channel] = client.get(f"/api/v1/accounts/{user}/channels").json()
            assert (channel["state"], channel["redeemed_wei"], channel["refundable_wei"]) == (
                "open", 200 * PRICE, 100 * PRICE)
            assert client.get("/api/v1/accounts/nonsense/channels").status_code == 400
            dev0 = client.get(f"/api/v1/accounts/{ws.address_of('dev0')}").json()
            assert any(p["model_id"] == 1 for p in dev0["models_paid"])
    finally:
        ws.close()
