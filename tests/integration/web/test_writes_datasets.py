"""Datasets made in the browser (local accounts and wallets), and the signed contributor details they ask for."""

from __future__ import annotations

from pathlib import Path

from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from databright.web._details import details_message
from databright.workspace import Workspace
from tests.integration.web.conftest import sign_in, write_batch
from tests.integration.web.test_wallet_writes import send, siwe

FORM = {"name": "Field notes", "description": "Photos from the field.", "kind": "files", "labels": "a, b",
        "license": "CC0", "contributor_fields": "affiliation, country", "initial_shares": "500",
        "quorum_percent": "20", "approval_percent": "50", "voting_hours": "2", "bond_eth": "0.01",
        "base_reward_per_item": "10", "max_reward_per_proposal": "1000"}


def _files(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    return [*files, ("labels", ("labels.csv", (folder / "labels.csv").read_bytes(), "text/csv"))]


def _create(client: TestClient, token: str, **changes: str) -> object:
    return client.post("/datasets/new", data={**FORM, **changes, "csrf_token": token}, follow_redirects=False)


def test_a_local_account_creates_a_dataset_and_contributors_sign_their_details(
        client: TestClient, app_ws: Workspace, tmp_path: Path) -> None:
    assert "/signin" in client.get("/datasets/new", follow_redirects=False).headers["location"]
    token = sign_in(client, "dev0")["X-CSRF-Token"]
    assert 'name="contributor_fields"' in client.get("/datasets/new").text
    for bad, message in ((dict(contributor_fields="a<b"), "contributor field"),
                         (dict(base_reward_per_item="5000"), "above the cap"),
                         (dict(quorum_percent="0"), "quorum_percent"), (dict(name=" "), "needs a name")):
        reply = _create(client, token, **bad)
        assert reply.headers["location"] == "/datasets/new", bad  # type: ignore[attr-defined]
        assert message in client.get("/datasets/new").text, bad
    before = len(client.get("/api/v1/datasets").json())
    made = _create(client, token)
    location = made.headers["location"]  # type: ignore[attr-defined]
    dataset_id = int(location.rsplit("/", 1)[1])
    d = client.get(f"/api/v1/datasets/{dataset_id}").json()
    assert len(client.get("/api/v1/datasets").json()) == before + 1
    assert (d["name"], d["total_shares"], d["quorum_bps"], d["voting_period_s"], d["proposal_bond_wei"]) == (
        "Field notes", 500, 2000, 7200, 10**16)
    assert d["labels"] == ["a", "b"]

    # A contributor is asked for the details, signs them, and the proposal shows them verified.
    token = sign_in(client, "dev1")["X-CSRF-Token"]
    form = client.get(f"/datasets/{dataset_id}/propose").text
    assert 'data-field="affiliation"' in form and 'data-field="country"' in form
    folder = write_batch(tmp_path / "batch", list("ab"), 41)
    count = len(client.get("/api/v1/proposals").json())
    missing = client.post(f"/datasets/{dataset_id}/propose", data={"csrf_token": token, "detail": ["Uni Bern", ""]},
                          files=_files(folder))
    assert "asks for your country" in missing.text
    assert len(client.get("/api/v1/proposals").json()) == count  # nothing was sent
    sent = client.post(f"/datasets/{dataset_id}/propose", files=_files(folder), follow_redirects=False,
                       data={"csrf_token": token, "detail": ["Uni Bern", "Switzerland"]})
    proposal_id = int(sent.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/proposals/{proposal_id}").text
    assert "Uni Bern" in page and "Switzerland" in page and 'class="sig ok"' in page

    # A record edited on disk no longer verifies.
    [record] = (app_ws.home.root / "web" / "details").glob("*.json")
    record.write_text(record.read_text().replace("Uni Bern", "Uni Zurich"))
    assert 'class="sig bad"' in client.get(f"/proposals/{proposal_id}").text


def test_a_wallet_creates_a_dataset_and_signs_its_details(client: TestClient, app_ws: Workspace,
                                                          tmp_path: Path) -> None:
    wallet = app_ws.signer("dev3")
    headers = siwe(client, wallet)
    tx = client.post("/api/v1/datasets/tx", json={**FORM, "name": "Wallet set"}, headers=headers)
    assert tx.status_code == 200, tx.text
    assert tx.json()["to"] == app_ws.market.address
    done = client.post("/api/v1/transactions", json={"tx_hash": send(app_ws, wallet, tx.json())}, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["message"].startswith("Dataset ") and done.json()["url"].startswith("/datasets/")
    dataset_id = int(done.json()["url"].rsplit("/", 1)[1])
    assert client.get(f"/api/v1/datasets/{dataset_id}").json()["creator"] == wallet.address

    folder = write_batch(tmp_path / "batch", list("ba"), 42)
    path = f"/api/v1/datasets/{dataset_id}/proposals/tx"
    fields = [("affiliation", "ETH Zurich"), ("country", "CH")]
    from databright.web._auth import comment_date

    date = comment_date()
    message = details_message(app_ws.ledger.chain_id, dataset_id, wallet.address, fields, date)
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    data = {"detail": ["ETH Zurich", "CH"], "details_date": date}
    other = app_ws.signer("dev0").sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    forged = client.post(path, files=_files(folder), headers=headers, data={**data, "details_signature": other})
    assert forged.status_code == 400 and "not signed by the signed-in account" in forged.json()["error"]
    prepared = client.post(path, files=_files(folder), headers=headers, data={**data, "details_signature": signature})
    assert prepared.status_code == 200, prepared.text
    step = prepared.json()  # a proposal is a commitment, then a reveal with the bond
    committed = client.post("/api/v1/transactions", json={"tx_hash": send(app_ws, wallet, step["commit"])},
                            headers=headers)
    assert committed.status_code == 200, committed.text
    reveal = client.post(step["reveal_url"], json=step["reveal"], headers=headers)
    assert reveal.status_code == 200, reveal.text
    done = client.post("/api/v1/transactions", json={"tx_hash": send(app_ws, wallet, reveal.json())},
                       headers=headers)
    page = client.get(done.json()["url"]).text
    assert "ETH Zurich" in page and 'class="sig ok"' in page
