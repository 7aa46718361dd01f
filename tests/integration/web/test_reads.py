"""Pages and read-only API routes over the index; unknown ids and bad input are 4xx, never 500."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from fastapi.testclient import TestClient

PAGES = ["/", "/datasets/1", "/datasets/1?page=2", "/dashboard", "/dashboard?status=open", "/proposals/1",
         "/proposals/2", "/proposals/2/live", "/proposals/2/comments", "/models", "/signin"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_render(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/html")
    assert "DataBright" in reply.text or "/live" in path or "/comments" in path


def test_datasets_api_mirrors_the_index(client: TestClient) -> None:
    [d] = client.get("/api/v1/datasets").json()
    assert (d["name"], d["items"], d["shareholders"], d["open_proposals"]) == ("shapes", 4, 1, 1)
    assert d["labels"] == ["a", "b"]
    holders = client.get("/api/v1/datasets/1/shareholders").json()
    assert holders[0]["shares"] == d["total_shares"] and holders[0]["fraction"] == 1.0
    items = client.get("/api/v1/datasets/1/items", params={"limit": 2}).json()
    assert [i["label"] for i in items] == ["a", "b"]


def test_proposal_api_has_the_tally(client: TestClient) -> None:
    p = client.get("/api/v1/proposals/2").json()
    assert p["status"] == "open" and p["items"] == 4
    assert p["tally"]["snapshot_supply"] == 1040 and p["tally"]["outcome"] == "voting"
    assert [q["proposal_id"] for q in client.get("/api/v1/proposals", params={"status": "open"}).json()] == [2]


def test_blobs_are_served_with_their_type(client: TestClient) -> None:
    cid = client.get("/api/v1/datasets/1/items").json()[0]["cid"]
    reply = client.get(f"/blobs/{cid}")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.content.startswith(b"\x89PNG")
    assert client.get("/blobs/not-a-cid").status_code == 400
    missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    assert client.get(f"/blobs/{missing}").status_code == 404


def test_parquet_download(client: TestClient) -> None:
    reply = client.get("/api/v1/datasets/1/parquet")
    assert reply.status_code == 200 and "attachment" in reply.headers["content-disposition"]
    frame = pd.read_parquet(io.BytesIO(reply.content))
    assert len(frame) == 4 and set(frame["label_name"]) == {"a", "b"} and set(frame["label"]) == {0, 1}
    assert frame["file"].iloc[0]["bytes"].startswith(b"\x89PNG")


@pytest.mark.parametrize("path", ["/api/v1/datasets/9", "/api/v1/proposals/99", "/api/v1/proposals/99/votes",
                                  "/api/v1/proposals/99/comments", "/api/v1/datasets/9/items"])
def test_unknown_ids_are_404_json(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 404
    assert "unknown" in reply.json()["error"]


def test_malformed_input_is_422_json(client: TestClient) -> None:
    assert client.get("/api/v1/proposals/abc").json()["error"].startswith("proposal_id")
    assert client.get("/api/v1/proposals", params={"status": "maybe"}).status_code == 422
    assert client.get("/api/v1/accounts/0x123").status_code == 400


def test_unknown_pages_are_friendly(client: TestClient) -> None:
    reply = client.get("/datasets/42")
    assert reply.status_code == 404 and "unknown dataset" in reply.text
    assert client.get("/nowhere").status_code == 404


def test_account_page_needs_sign_in(client: TestClient) -> None:
    reply = client.get("/account", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"].startswith("/signin")
    assert client.get("/api/v1/accounts/me").status_code == 401
