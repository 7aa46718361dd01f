"""Pages a voter reads: every item of a proposal reachable by page, paged lists, units on every number."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from databright.web.routers import proposals
from tests.integration.web.conftest import sign_in


def _cids(html: str) -> list[str]:
    return re.findall(r'<img src="/blobs/([^"]+)"', html)


def test_every_item_of_a_proposal_is_reachable(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proposals, "ITEMS_PER_PAGE", 3)
    everything = [i["cid"] for i in client.get("/api/v1/proposals/2/items").json()]
    assert len(everything) == client.get("/api/v1/proposals/2").json()["items"] == 4
    first = client.get("/proposals/2").text
    assert "1–3 of 4" in first and 'rel="prev"' not in first
    [next_url] = re.findall(r'<a href="([^"]+)" rel="next">', first)
    assert next_url.startswith("/proposals/2?cursor=") and next_url.endswith("#items")
    second = client.get(next_url.replace("&amp;", "&")).text
    assert _cids(first) + _cids(second) == everything and 'rel="next"' not in second
    [prev_url] = re.findall(r'<a href="([^"]+)" rel="prev">', second)
    assert _cids(client.get(prev_url.replace("&amp;", "&")).text) == everything[:3]
    page = client.get("/api/v1/proposals/2/items?limit=2")
    after = client.get("/api/v1/proposals/2/items", params={"limit": 2, "cursor": page.headers["x-next-cursor"]})
    assert [i["cid"] for i in page.json() + after.json()] == everything and "x-next-cursor" not in after.headers


@pytest.mark.parametrize("path", ["/api/v1/proposals/2/items", "/api/v1/datasets/1/items", "/api/v1/proposals",
                                  "/api/v1/datasets/1/shareholders", "/api/v1/proposals/2/votes",
                                  "/api/v1/proposals/2/comments", "/proposals/2", "/datasets/1", "/dashboard"])
def test_a_bad_cursor_is_a_one_line_400(client: TestClient, path: str) -> None:
    for cursor in ("nonsense", "eyJsIjoiZWxzZXdoZXJlIiwiayI6WzFdLCJkIjoiPiJ9"):  # garbage; another list's cursor
        reply = client.get(path, params={"cursor": cursor})
        assert reply.status_code == 400, (path, reply.text)
        assert "invalid cursor" in (reply.json()["error"] if path.startswith("/api") else reply.text)
    if path.startswith("/api"):
        assert client.get(path, params={"limit": 501}).status_code == 422


def test_the_api_pages_proposals_by_cursor(client: TestClient) -> None:
    everything = [p["proposal_id"] for p in client.get("/api/v1/proposals").json()]
    assert len(everything) >= 2
    seen: list[int] = []
    url: str | None = "/api/v1/proposals?limit=1"
    while url:
        reply = client.get(url)
        seen += [p["proposal_id"] for p in reply.json()]
        link = re.search(r'<([^>]+)>; rel="next"', reply.headers.get("link", ""))
        url = link.group(1) if link else None
    assert seen == everything


def test_the_dashboard_is_paged(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proposals, "ROWS_PER_PAGE", 1)
    first = client.get("/dashboard?status=").text
    [next_url] = re.findall(r'<a href="([^"]+)" rel="next">', first)
    assert next_url.startswith("/dashboard?status=&amp;cursor=")
    second = client.get(next_url.replace("&amp;", "&")).text
    rows = [re.findall(r'<a href="/proposals/(\d+)">#', page) for page in (first, second)]
    assert len(rows[0]) == len(rows[1]) == 1 and rows[0] > rows[1]  # newest first


def test_numbers_say_their_unit(client: TestClient) -> None:
    page = client.get("/proposals/2").text
    assert re.search(r"quorum [\d,]+ shares", page)  # the meter's mark and the participation line
    assert "half: decides at once" in page
    assert "of 0 needed" not in page and " needed</small>" not in page
    assert re.search(r"\b1 items\b", page) is None
    assert "databright</code>" in client.get("/signin").text  # where the dev password comes from


def test_the_withdraw_button_comes_before_the_details(client: TestClient) -> None:
    sign_in(client, "dev0")
    page = client.get("/account").text
    header = re.search(r"<thead>(.*?)</thead>", page, re.S).group(1)  # type: ignore[union-attr]
    assert header.index("Withdrawable") < header.index("Shares")
    assert 'data-label="Withdrawable"' in page and "table class=\"data cards\"" in page
