"""Browser-wallet writes: the server prepares the transaction, the wallet sends it, the server confirms it.

The "wallet" here is a key held by the test (dev0's, so it holds shares, or a
fresh one that holds nothing): it signs the prepared transaction and sends it
raw to the app's own chain, as a wallet's ``eth_sendTransaction`` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from databright.chain import Commitment
from databright.operations import load_batch, propose_batch
from databright.storage import digest_of_cid
from databright.web._pages import eth
from databright.workspace import Workspace
from tests.integration.web.conftest import csrf, sign_in, write_batch


@pytest.fixture(scope="module")
def proposal(app_ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> int:
    """A proposal of its own (dev2's), so these tests leave the shared proposal 2 alone."""
    batch = load_batch(app_ws, write_batch(tmp_path_factory.mktemp("wallet") / "batch", list("abba"), 11))
    proposal_id, _ = propose_batch(app_ws, app_ws.signer("dev2"), 1, batch)
    app_ws.sync()
    return proposal_id


def siwe(client: TestClient, wallet: LocalAccount) -> dict[str, str]:
    template = client.get("/api/v1/auth/nonce").json()["message_template"]
    message = template.replace("{address}", wallet.address)
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    reply = client.post("/api/v1/auth/siwe", json={"message": message, "signature": signature}, headers=csrf(client))
    assert reply.status_code == 200 and reply.json()["mode"] == "wallet", reply.text
    return {"X-CSRF-Token": reply.json()["csrf_token"]}


def send(ws: Workspace, wallet: LocalAccount, tx: dict[str, Any]) -> str:
    """What a wallet does with ``eth_sendTransaction``: add nonce and fees, sign, send."""
    w3 = ws.ledger.w3
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    fields = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16), "chainId": int(tx["chainId"], 16),
              "gas": int(tx["gas"], 16), "nonce": w3.eth.get_transaction_count(wallet.address, "pending"),
              "maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * base_fee + 10**9, "type": 2}
    return w3.eth.send_raw_transaction(wallet.sign_transaction(fields).raw_transaction).to_0x_hex()


def test_prepare_needs_a_session_and_the_csrf_token(client: TestClient, proposal: int) -> None:
    body = {"support": True}
    assert client.post(f"/api/v1/proposals/{proposal}/votes/tx", json=body, headers=csrf(client)).status_code == 401
    siwe(client, Account.create())
    for path, payload in [(f"/api/v1/proposals/{proposal}/votes/tx", body),
                          (f"/api/v1/proposals/{proposal}/finalize/tx", None),
                          ("/api/v1/accounts/me/withdrawals/tx", {"dataset_id": 1}),
                          ("/api/v1/transactions", {"tx_hash": "0x" + "ab" * 32})]:
        reply = client.post(path, json=payload, headers={"X-CSRF-Token": "forged"})
        assert reply.status_code == 403 and "CSRF" in reply.json()["error"], path


def test_bad_requests_get_an_error_not_a_transaction(client: TestClient, proposal: int) -> None:
    headers = siwe(client, Account.create())  # holds no shares and never earned anything
    reply = client.post(f"/api/v1/proposals/{proposal}/votes/tx", json={"support": True}, headers=headers)
    assert reply.status_code == 400 and "no shares" in reply.json()["error"]
    reply = client.post("/api/v1/accounts/me/withdrawals/tx", json={"dataset_id": 1}, headers=headers)
    assert reply.status_code == 400 and "nothing to withdraw" in reply.json()["error"]
    assert client.post("/api/v1/accounts/me/withdrawals/tx", json={"dataset_id": 9},
                       headers=headers).status_code == 404
    assert client.post("/api/v1/accounts/me/withdrawals/tx", json={"dataset_id": "x"},
                       headers=headers).status_code == 422
    assert client.post("/api/v1/proposals/999/votes/tx", json={"support": True}, headers=headers).status_code == 404
    assert client.post(f"/api/v1/proposals/{proposal}/votes/tx", json={"support": "maybe"},
                       headers=headers).status_code == 422
    reply = client.post(f"/api/v1/proposals/{proposal}/finalize/tx", headers=headers)
    assert reply.status_code == 400 and "cannot be finalized yet" in reply.json()["error"]
    assert client.post("/api/v1/transactions", json={"tx_hash": "0x12"}, headers=headers).status_code == 422
    unknown = client.post("/api/v1/transactions", json={"tx_hash": "0x" + "ab" * 32}, headers=headers)
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_wallet_pages_send_from_the_wallet(client: TestClient, proposal: int) -> None:
    siwe(client, Account.create())
    page = client.get(f"/proposals/{proposal}").text
    assert 'data-wallet="yes"' in page and f'data-tx="/api/v1/proposals/{proposal}/votes/tx"' in page
    assert 'id="wallet-message"' in page
    client.post("/api/v1/auth/signout", headers=csrf(client))
    sign_in(client, "dev0")  # local mode keeps posting the form
    assert 'data-wallet="no"' in client.get(f"/proposals/{proposal}").text


def test_wallet_votes_finalizes_and_withdraws(client: TestClient, app_ws: Workspace, proposal: int) -> None:
    wallet = app_ws.signer("dev0")  # the dataset's creator: all shares at the snapshot
    headers = siwe(client, wallet)
    market = app_ws.market

    reply = client.post(f"/api/v1/proposals/{proposal}/votes/tx", json={"support": True}, headers=headers)
    assert reply.status_code == 200, reply.text
    tx = reply.json()
    assert set(tx) == {"from", "to", "data", "value", "chainId", "gas"}
    assert tx["from"] == wallet.address and tx["to"] == market.address and tx["value"] == "0x0"
    assert int(tx["chainId"], 16) == app_ws.ledger.chain_id
    hint = market.checkpoint_hint(proposal, wallet.address)  # checked on-chain: vote gas stays flat
    assert tx["data"] == market.contract.functions.vote(proposal, True, hint)._encode_transaction_data()
    assert not market.has_voted(proposal, wallet.address)  # preparing sends nothing

    done = client.post("/api/v1/transactions", json={"tx_hash": send(app_ws, wallet, tx)}, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["events"] == ["VoteCast"] and done.json()["message"] == "You voted yes with 1,040 shares."
    tally = client.get(f"/api/v1/proposals/{proposal}").json()["tally"]  # the index is synced already
    assert tally["yes"] == 1040 and tally["outcome"] == "accepted when finalized"
    again = client.post(f"/api/v1/proposals/{proposal}/votes/tx", json={"support": False}, headers=headers)
    assert again.status_code == 400 and "already voted" in again.json()["error"]

    tx = client.post(f"/api/v1/proposals/{proposal}/finalize/tx", headers=headers).json()
    done = client.post("/api/v1/transactions", json={"tx_hash": send(app_ws, wallet, tx)}, headers=headers)
    assert done.status_code == 200 and done.json()["message"] == f"Proposal {proposal} is accepted."
    assert client.get(f"/api/v1/proposals/{proposal}").json()["status"] == "accepted"
    assert client.post(f"/api/v1/proposals/{proposal}/finalize/tx", headers=headers).status_code == 400

    client.app.state.web.write(lambda: market.deposit(app_ws.signer("dev3"), 1, 10**18))  # type: ignore[attr-defined]
    pending = market.withdrawable(1, wallet.address)
    assert pending > 0
    tx = client.post("/api/v1/accounts/me/withdrawals/tx", json={"dataset_id": 1}, headers=headers).json()
    balance = app_ws.ledger.balance(wallet.address)
    tx_hash = send(app_ws, wallet, tx)
    done = client.post("/api/v1/transactions", json={"tx_hash": tx_hash}, headers=headers)
    assert done.status_code == 200 and done.json()["message"].startswith("Withdrew ")
    receipt = app_ws.ledger.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert app_ws.ledger.balance(wallet.address) == balance + pending - fee
    holding = {h["dataset_id"]: h for h in client.get("/api/v1/accounts/me").json()["holdings"]}[1]
    assert holding["withdrawable_wei"] == 0 and holding["withdrawn_wei"] >= pending
    again = client.post("/api/v1/accounts/me/withdrawals/tx", json={"dataset_id": 1}, headers=headers)
    assert again.status_code == 400 and "nothing to withdraw" in again.json()["error"]

    # The accepted proposal's bond waits for its contributor to claim it.
    contributor = app_ws.signer("dev2")
    headers = siwe(client, contributor)
    due = client.get("/api/v1/accounts/me").json()["refundable_wei"]
    assert due >= market.dataset(1).proposal_bond
    tx = client.post("/api/v1/accounts/me/refunds/tx", headers=headers).json()
    done = client.post("/api/v1/transactions", json={"tx_hash": send(app_ws, contributor, tx)}, headers=headers)
    assert done.status_code == 200 and done.json()["message"] == f"Claimed {eth(due)} of refunded bonds."
    again = client.post("/api/v1/accounts/me/refunds/tx", headers=headers)
    assert again.status_code == 400 and "no bond refund" in again.json()["error"]


def test_confirm_reports_reverts_and_refuses_other_senders(client: TestClient, app_ws: Workspace,
                                                           proposal: int) -> None:
    wallet = app_ws.signer("dev0")
    headers = siwe(client, wallet)
    # Sent without asking the server first (explicit gas, no estimate): it is mined and reverts.
    tx = {"to": app_ws.market.address, "value": "0x0", "chainId": hex(app_ws.ledger.chain_id), "gas": hex(200_000),
          "data": app_ws.market.contract.functions.finalize(proposal)._encode_transaction_data()}
    tx_hash = send(app_ws, wallet, tx)
    reply = client.post("/api/v1/transactions", json={"tx_hash": tx_hash}, headers=headers)
    assert reply.status_code == 409 and "datamarket: proposal finalized" in reply.json()["error"]
    # Nobody can claim another account's transaction.
    other = siwe(client, Account.create())
    reply = client.post("/api/v1/transactions", json={"tx_hash": tx_hash}, headers=other)
    assert reply.status_code == 403 and "not sent by the signed-in account" in reply.json()["error"]


def test_chain_tells_the_wallet_where_to_send(client: TestClient, app_ws: Workspace) -> None:
    chain = client.get("/api/v1/chain").json()
    assert chain["chain_id"] == app_ws.ledger.chain_id and int(chain["chain_id_hex"], 16) == chain["chain_id"]
    assert chain["contract"] == app_ws.market.address
    assert chain["rpc_url"] is None  # this app runs the chain in-process; `databright serve` serves it


def upload(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The propose form's multipart fields for a folder written by ``write_batch``."""
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    return [*files, ("labels", ("labels.csv", (folder / "labels.csv").read_bytes(), "text/csv"))]


def test_prepare_proposal_refuses_bad_batches_and_sends_nothing(client: TestClient, app_ws: Workspace,
                                                                tmp_path: Path) -> None:
    good = upload(write_batch(tmp_path / "good", list("ab"), 21))
    path = "/api/v1/datasets/1/proposals/tx"
    assert client.post(path, files=good, headers=csrf(client)).status_code == 401
    headers = siwe(client, app_ws.signer("dev3"))  # funded: the batch itself is what is refused
    count = len(client.get("/api/v1/proposals").json())

    no_csrf = client.post(path, files=good)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
    forged = client.post(path, files=good, headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403
    bad = client.post(path, files=upload(write_batch(tmp_path / "bad", ["a", "z"], 22)), headers=headers)
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"] == "labels.csv line 3 (img-1.png): label 'z' is not one of the dataset's labels: a, b"
    # The seed's own images (same generator seed as the home's seed batch): already accepted.
    dup = client.post(path, files=upload(write_batch(tmp_path / "dup", list("abab"), 1)), headers=headers)
    assert dup.status_code == 400 and dup.json()["error"].startswith("4 item(s) already in dataset 1;")
    twice = write_batch(tmp_path / "twice", list("aa"), 23)
    (twice / "img-1.png").write_bytes((twice / "img-0.png").read_bytes())
    within = client.post(path, files=upload(twice), headers=headers)
    assert within.status_code == 400 and "1 repeated item(s) within the batch" in within.json()["error"]
    assert client.post("/api/v1/datasets/9/proposals/tx", files=good, headers=headers).status_code == 404
    nothing = client.post(path, data={"allow_duplicates": "false"}, headers=headers)
    assert nothing.status_code == 400 and "choose item files" in nothing.json()["error"]
    no_labels = client.post(path, files=good[:-1], headers=headers)
    assert no_labels.status_code == 400 and "labels CSV" in no_labels.json()["error"]
    big = client.post(path, files=[("files", ("big.png", b"\0" * 300_000, "image/png"))], headers=headers)
    assert big.status_code == 413 and "larger than the limit" in big.json()["error"]
    assert client.post(path, files=good, data={"allow_duplicates": "maybe"}, headers=headers).status_code == 422
    assert len(client.get("/api/v1/proposals").json()) == count  # nothing was sent


def test_wallet_proposes_a_batch(client: TestClient, app_ws: Workspace, tmp_path: Path) -> None:
    wallet = app_ws.signer("dev2")
    headers = siwe(client, wallet)
    market = app_ws.market
    folder = write_batch(tmp_path / "batch", list("abb"), 24)
    expected = load_batch(app_ws, folder)  # content-addressed: the same root and manifest the server builds
    bond = market.dataset(1).proposal_bond
    count = len(client.get("/api/v1/proposals").json())

    reply = client.post("/api/v1/datasets/1/proposals/tx", files=upload(folder), headers=headers)
    assert reply.status_code == 200, reply.text
    step = reply.json()
    commit = step["commit"]
    assert set(commit) == {"from", "to", "data", "value", "chainId", "gas"}
    assert commit["from"] == wallet.address and commit["to"] == market.address and commit["value"] == "0x0"
    reveal = step["reveal"]
    assert (reveal["dataset_id"], reveal["root"], reveal["item_count"]) == (1, "0x" + expected.manifest.root.hex(), 3)
    assert reveal["manifest_digest"] == "0x" + digest_of_cid(expected.manifest_cid).hex()
    function, args = market.contract.decode_function_input(commit["data"])
    assert function.fn_name == "commit_proposal"
    bound = Commitment(wallet.address, 1, expected.manifest.root, digest_of_cid(expected.manifest_cid), 3,
                       bytes.fromhex(reveal["salt"][2:]))
    assert args == {"commitment": bound.digest}  # the commitment binds this wallet
    assert len(client.get("/api/v1/proposals").json()) == count  # preparing sends nothing
    assert app_ws.store.has(expected.manifest_cid)  # the manifest is stored, so the index can read it
    # Revealing before the commitment is mined is refused with the contract's reason.
    early = client.post(step["reveal_url"], json=reveal, headers=headers)
    assert early.status_code == 409 and "no commitment" in early.json()["error"]

    done = client.post("/api/v1/transactions", json={"tx_hash": send(app_ws, wallet, commit)}, headers=headers)
    assert done.status_code == 200 and done.json()["events"] == ["ProposalCommitted"], done.text
    reply = client.post(step["reveal_url"], json=reveal, headers=headers)
    assert reply.status_code == 200, reply.text
    tx = reply.json()
    assert int(tx["value"], 16) == bond > 0
    assert market.contract.decode_function_input(tx["data"])[0].fn_name == "reveal_proposal"
    other = client.post(step["reveal_url"], json=reveal, headers=siwe(client, app_ws.signer("dev3")))
    assert other.status_code == 409 and "no commitment" in other.json()["error"]  # a copier cannot use it
    headers = siwe(client, wallet)
    balance = app_ws.ledger.balance(wallet.address)
    tx_hash = send(app_ws, wallet, tx)
    done = client.post("/api/v1/transactions", json={"tx_hash": tx_hash}, headers=headers)
    assert done.status_code == 200, done.text
    result = done.json()
    new = count + 1
    assert result["events"] == ["ProposalCreated"] and result["message"] == f"Proposal {new} submitted: 3 items."
    assert result["proposal_id"] == new and result["url"] == f"/proposals/{new}"
    proposal = client.get(f"/api/v1/proposals/{new}").json()  # the index is synced already
    assert proposal["contributor"] == wallet.address and proposal["status"] == "open"
    assert proposal["items"] == 3 and proposal["bond_wei"] == bond
    assert proposal["manifest_cid"] == expected.manifest_cid and proposal["root"] == "0x" + expected.manifest.root.hex()
    receipt = app_ws.ledger.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    assert app_ws.ledger.balance(wallet.address) == balance - bond - receipt["gasUsed"] * receipt["effectiveGasPrice"]
    page = client.get(f"/proposals/{new}").text
    assert "img-0.png" in page or "item labelled a" in page  # the manifest's items are on the proposal page

    again = client.post("/api/v1/datasets/1/proposals/tx", files=upload(folder), headers=headers)
    assert again.status_code == 400 and f"already proposal {new}" in again.json()["error"]  # a root is open once


def test_propose_page_sends_from_the_wallet(client: TestClient) -> None:
    siwe(client, Account.create())
    page = client.get("/datasets/1/propose").text
    assert 'data-wallet="yes"' in page and 'data-tx="/api/v1/datasets/1/proposals/tx"' in page
    client.post("/api/v1/auth/signout", headers=csrf(client))
    sign_in(client, "dev0")  # local mode keeps posting the form to the server, which signs
    page = client.get("/datasets/1/propose").text
    assert 'data-wallet="no"' in page and "data-tx" not in page
