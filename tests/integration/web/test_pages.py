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
    assert 'href="?page=2#items"' in first and "1–3 of 4" in first
    seen = _cids(first) + _cids(client.get("/proposals/2?page=2").text)
    assert seen == everything
    assert _cids(client.get("/proposals/2?page=99").text) == everything[3:]  # past the end: the last page
    assert [i["cid"] for i in client.get("/api/v1/proposals/2/items?offset=1&limit=2").json()] == everything[1:3]


def test_the_api_pages_proposals_by_cursor(client: TestClient) -> None:
    everything = [p["proposal_id"] for p in client.get("/api/v1/proposals").json()]
    assert len(everything) >= 2
    seen: list[int] = []
    url: str | None = "/api/v1/proposals?limit=1"
    while url:
        reply = client.get(url)
        seen += [p["proposal_id"] for p in reply.json()]
        link = reply.headers.get("link")
        url = re.match(r'<([^>]+)>; rel="next"', link).group(1) if link else None  # type: ignore[union-attr]
    assert seen == everything


def test_the_dashboard_is_paged(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proposals, "ROWS_PER_PAGE", 1)
    first, second = client.get("/dashboard").text, client.get("/dashboard?page=2").text
    rows = [re.findall(r'<a href="/proposals/(\d+)">#', page) for page in (first, second)]
    assert len(rows[0]) == len(rows[1]) == 1 and rows[0] != rows[1]
    assert 'href="?page=2"' in first and "page 1 of" in first


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
