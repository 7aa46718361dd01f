"""Signing in, CSRF, votes, signed comments, withdrawals and uploads: real transactions, clean refusals."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from databright.workspace import Workspace
from tests.integration.web.conftest import csrf, sign_in, write_batch


def test_writes_need_the_csrf_token(client: TestClient) -> None:
    reply = client.post("/api/v1/auth/local", json={"account": "dev0", "password": "databright"})
    assert reply.status_code == 403 and "CSRF" in reply.json()["error"]
    headers = sign_in(client, "dev0")
    assert client.post("/api/v1/proposals/2/votes", json={"support": True}).status_code == 403
    assert client.post("/api/v1/proposals/2/votes", json={"support": True},
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.get("/api/v1/session").json()["csrf_token"] == headers["X-CSRF-Token"]


def test_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    cookie = client.get("/api/v1/session").headers.get("set-cookie", "")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


def test_wrong_password_is_refused_even_after_another_sign_in(client: TestClient) -> None:
    sign_in(client, "dev0")
    other = TestClient(client.app)
    reply = other.post("/api/v1/auth/local", json={"account": "dev0", "password": "guess"}, headers=csrf(other))
    assert reply.status_code == 403 and "wrong password" in reply.json()["error"]
    assert other.get("/api/v1/session").json()["address"] is None


def test_comment_is_signed_and_verifiable(client: TestClient) -> None:
    assert client.post("/api/v1/proposals/2/comments", json={"body": "hi"}, headers=csrf(client)).status_code == 401
    headers = sign_in(client, "dev2")  # no shares: anyone signed in may comment
    reply = client.post("/api/v1/proposals/2/comments", json={"body": "Labels look right to me."}, headers=headers)
    assert reply.status_code == 201, reply.text
    comment = reply.json()
    assert comment["verified"]
    signer = Account.recover_message(encode_defunct(text=comment["message"]), signature=comment["signature"])
    assert signer == comment["author"]
    assert client.post("/api/v1/proposals/99/comments", json={"body": "x"}, headers=headers).status_code == 404
    assert client.post("/api/v1/proposals/2/comments", json={"body": ""}, headers=headers).status_code == 422
    assert "Labels look right" in client.get("/proposals/2/comments").text


def test_wallet_comment_must_be_signed_by_the_session_account(client: TestClient) -> None:
    wallet = Account.create()
    _siwe(client, wallet)
    headers = csrf(client)
    from databright.web._auth import comment_date, comment_message

    date = comment_date()
    message = comment_message(2, client.app.state.web.chain_id, wallet.address, "From my wallet.", date)
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    ok = client.post("/api/v1/proposals/2/comments", headers=headers,
                     json={"body": "From my wallet.", "date": date, "signature": signature})
    assert ok.status_code == 201 and ok.json()["verified"]
    forged = Account.create().sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    bad = client.post("/api/v1/proposals/2/comments", headers=headers,
                      json={"body": "From my wallet.", "date": date, "signature": forged})
    assert bad.status_code == 400


def _siwe(client: TestClient, wallet: object) -> None:
    template = client.get("/api/v1/auth/nonce").json()["message_template"]
    message = template.replace("{address}", wallet.address)  # type: ignore[attr-defined]
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()  # type: ignore[attr-defined]
    reply = client.post("/api/v1/auth/siwe", json={"message": message, "signature": signature}, headers=csrf(client))
    assert reply.status_code == 200, reply.text
    assert reply.json()["address"] == wallet.address and reply.json()["mode"] == "wallet"  # type: ignore[attr-defined]


def test_siwe_refuses_replays_and_other_signers(client: TestClient) -> None:
    wallet = Account.create()
    template = client.get("/api/v1/auth/nonce").json()["message_template"]
    message = template.replace("{address}", wallet.address)
    forged = Account.create().sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    reply = client.post("/api/v1/auth/siwe", json={"message": message, "signature": forged}, headers=csrf(client))
    assert reply.status_code == 400 and "does not match" in reply.json()["error"]
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    replay = client.post("/api/v1/auth/siwe", json={"message": message, "signature": signature}, headers=csrf(client))
    assert replay.status_code == 400  # the nonce was used up by the first attempt
    # A wallet session holds no key, so the server cannot vote for it.
    _siwe(client, wallet)
    assert client.post("/api/v1/proposals/2/votes", json={"support": True}, headers=csrf(client)).status_code == 403


def test_only_snapshot_shareholders_vote_once(client: TestClient) -> None:
    headers = sign_in(client, "dev2")
    reply = client.post("/api/v1/proposals/2/votes", json={"support": True}, headers=headers)
    assert reply.status_code == 400 and "no shares" in reply.json()["error"]
    headers = sign_in(client, "dev0")
    reply = client.post("/api/v1/proposals/2/votes", json={"support": True}, headers=headers)
    assert reply.status_code == 201, reply.text
    tally = reply.json()["tally"]
    assert tally["yes"] == 1040 and tally["outcome"] == "accepted when finalized"
    again = client.post("/api/v1/proposals/2/votes", json={"support": False}, headers=headers)
    assert again.status_code == 400 and "already voted" in again.json()["error"]
    assert [v["weight"] for v in client.get("/api/v1/proposals/2/votes").json()] == [1040]
    done = client.post("/api/v1/proposals/2/finalize", headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "accepted"
    assert client.post("/api/v1/proposals/2/finalize", headers=headers).status_code == 400


def test_withdraw_pays_out_once(client: TestClient, app_ws: Workspace) -> None:
    state = client.app.state.web
    state.write(lambda: app_ws.market.deposit(app_ws.signer("dev3"), 1, 10**18))
    headers = sign_in(client, "dev1")
    before = {h["dataset_id"]: h for h in client.get("/api/v1/accounts/me").json()["holdings"]}[1]
    assert before["withdrawable_wei"] > 0
    reply = client.post("/api/v1/accounts/me/withdrawals", json={"dataset_id": 1}, headers=headers)
    assert reply.status_code == 201 and reply.json()["amount_wei"] == before["withdrawable_wei"]
    after = client.get("/api/v1/accounts/me").json()["holdings"][0]
    assert after["withdrawable_wei"] == 0 and after["withdrawn_wei"] > before["withdrawn_wei"]
    again = client.post("/api/v1/accounts/me/withdrawals", json={"dataset_id": 1}, headers=headers)
    assert again.status_code == 400 and "nothing to withdraw" in again.json()["error"]
    assert client.post("/api/v1/accounts/me/withdrawals", json={"dataset_id": 7}, headers=headers).status_code == 404


def _upload(client: TestClient, folder: Path, token: str) -> object:
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    files.append(("labels", ("labels.csv", (folder / "labels.csv").read_bytes(), "text/csv")))
    return client.post("/datasets/1/propose", data={"csrf_token": token}, files=files, follow_redirects=False)


def test_upload_proposes_or_explains(client: TestClient, tmp_path: Path) -> None:
    headers = sign_in(client, "dev2")
    token = headers["X-CSRF-Token"]
    count = len(client.get("/api/v1/proposals").json())
    bad = _upload(client, write_batch(tmp_path / "bad", ["a", "z"], 5), token)
    assert bad.status_code == 303 and bad.headers["location"] == "/datasets/1/propose"  # type: ignore[attr-defined]
    assert "not one of the dataset" in client.get("/datasets/1/propose").text
    assert len(client.get("/api/v1/proposals").json()) == count  # nothing was sent
    good = _upload(client, write_batch(tmp_path / "good", ["a", "b", "b"], 6), token)
    assert good.headers["location"] == f"/proposals/{count + 1}"  # type: ignore[attr-defined]
    assert client.get(f"/api/v1/proposals/{count + 1}").json()["items"] == 3
    big = client.post("/datasets/1/propose", data={"csrf_token": token},
                      files=[("files", ("big.png", b"\0" * 300_000, "image/png"))])
    assert big.status_code == 413 and "larger than the limit" in big.text
