"""Uploads: stored only for a proposal that can be sent; any file name; no server path in a message."""

from __future__ import annotations

import tempfile
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from databright.storage import cid_of
from databright.workspace import Workspace
from tests.integration.web.conftest import csrf, sign_in, write_batch


def _files(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    return [*files, ("labels", ("labels.csv", (folder / "labels.csv").read_bytes(), "text/csv"))]


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("databright-upload-*")}


def test_an_unfunded_wallet_stores_nothing(client: TestClient, app_ws: Workspace, tmp_path: Path) -> None:
    wallet = Account.create()  # a fresh key: no ETH for the bond
    template = client.get("/api/v1/auth/nonce").json()["message_template"]
    message = template.replace("{address}", wallet.address)
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    assert client.post("/api/v1/auth/siwe", json={"message": message, "signature": signature},
                       headers=csrf(client)).status_code == 200
    folder = write_batch(tmp_path / "batch", list("ab"), 31)
    before = _leftovers()
    reply = client.post("/api/v1/datasets/1/proposals/tx", files=_files(folder), headers=csrf(client))
    assert reply.status_code == 400 and "not enough for the proposal bond" in reply.json()["error"]
    for png in folder.glob("*.png"):
        assert not app_ws.store.has(cid_of(png.read_bytes())), "an unsendable upload was stored"
    assert _leftovers() <= before


def test_a_batch_that_does_not_fit_stores_nothing(client: TestClient, app_ws: Workspace, tmp_path: Path) -> None:
    headers = sign_in(client, "dev2")
    folder = write_batch(tmp_path / "bad", ["a", "z"], 32)
    reply = client.post("/api/v1/datasets/1/proposals/tx", files=_files(folder), headers=headers)
    assert reply.status_code == 400 and "not one of the dataset's labels" in reply.json()["error"]
    for png in folder.glob("*.png"):
        assert not app_ws.store.has(cid_of(png.read_bytes()))


def test_any_file_name_is_taken_and_no_server_path_is_shown(client: TestClient, tmp_path: Path) -> None:
    headers = sign_in(client, "dev2")
    token = headers["X-CSRF-Token"]
    folder = write_batch(tmp_path / "quoted", list("ab"), 33)
    (folder / "img-0.png").rename(folder / 'my "best" photo.png')
    (folder / "img-1.png").rename(folder / "naïve, 2 ; x.png")
    (folder / "labels.csv").write_text('file,label\n"my ""best"" photo.png",a\n"naïve, 2 ; x.png",b\n')
    count = len(client.get("/api/v1/proposals").json())
    reply = client.post("/datasets/1/propose", data={"csrf_token": token}, files=_files(folder),
                        follow_redirects=False)
    assert reply.headers["location"] == f"/proposals/{count + 1}", client.get("/datasets/1/propose").text
    assert client.get(f"/api/v1/proposals/{count + 1}").json()["items"] == 2
    missing = write_batch(tmp_path / "missing", list("ab"), 34)
    (missing / "labels.csv").write_text("file,label\nimg-0.png,a\nnot-sent.png,b\n")
    bad = client.post("/api/v1/datasets/1/proposals/tx", files=_files(missing), headers=headers)
    assert bad.status_code == 400 and "not-sent.png" in bad.json()["error"]
    assert tempfile.gettempdir() not in bad.json()["error"] and "databright-upload" not in bad.json()["error"]
    page = client.post("/datasets/1/propose", data={"csrf_token": token}, files=_files(missing))
    assert "not-sent.png" in page.text and "databright-upload" not in page.text


def test_a_batch_of_the_wrong_kind_is_refused(client: TestClient, tmp_path: Path) -> None:
    headers = sign_in(client, "dev2")
    table = [("table", ("rows.csv", b"x,label\n1,a\n2,b\n", "text/csv"))]
    reply = client.post("/api/v1/datasets/1/proposals/tx", files=table, headers=headers)
    assert reply.status_code == 400 and "one file per item" in reply.json()["error"]
