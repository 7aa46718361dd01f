"""A cross-site request cannot replace the visitor's session cookie (and so sign them out)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.web.conftest import sign_in


def test_a_cross_site_post_sets_no_session_cookie(client: TestClient) -> None:
    sign_in(client, "dev0")
    cookies = dict(client.cookies)
    # What a hostile page's form post looks like: no cookie (SameSite), Sec-Fetch-Site: cross-site.
    fresh = TestClient(client.app, base_url="http://testserver")
    reply = fresh.post("/account/refund", data={"csrf_token": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert reply.status_code in (401, 403) and "set-cookie" not in reply.headers
    # A same-site first visit still gets its session.
    assert "set-cookie" in fresh.get("/", headers={"Sec-Fetch-Site": "none"}).headers
    assert client.get("/api/v1/session").json()["address"] and dict(client.cookies) == cookies
