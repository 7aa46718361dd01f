"""The dashboard under attack: oversized chunked bodies, framing, foreign Hosts, forged sign-ins,
copied cookies, floods of writes and password guesses — each refused with a clear answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from databright.web import DEFAULT_HOSTS, Limits, create_app
from databright.web._auth import STATEMENT
from databright.web._siwe import SiweMessage
from databright.workspace import Workspace
from tests.integration.web.conftest import csrf, sign_in

HOSTS = [*DEFAULT_HOSTS, "testserver"]


@pytest.fixture()
def strict(app_ws: Workspace) -> Iterator[TestClient]:
    """An app with small rate limits, so a flood shows within a few requests."""
    limits = Limits(account_burst=3, account_rate=0.01, client_burst=5, client_rate=0.01,
                    password_burst=2, password_rate=0.01, password_client_burst=3, password_client_rate=0.01)
    with TestClient(create_app(app_ws, secret="s", max_upload_bytes=200_000, allowed_hosts=HOSTS,
                               limits=limits)) as client:
        yield client


def test_a_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    headers = sign_in(client, "dev2")
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield head
        for _ in range(40):
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    for path in ("/api/v1/datasets/1/proposals/tx", "/api/v1/proposals/2/comments"):
        reply = client.post(path, content=chunks(),
                            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert reply.status_code == 413, reply.text
        assert "larger than the limit" in reply.json()["error"]
    page = client.post("/datasets/1/propose", content=chunks(),
                       headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert page.status_code == 413 and "larger than the limit" in page.text


def test_every_answer_forbids_framing_and_inline_script(client: TestClient) -> None:
    for path in ("/", "/dashboard", "/proposals/2", "/signin", "/api/v1/datasets", "/nowhere"):
        reply = client.get(path)
        csp = reply.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp and "unsafe-inline" not in csp
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "same-origin"
        assert reply.headers["cross-origin-opener-policy"] == "same-origin"
        assert "camera=()" in reply.headers["permissions-policy"]


def test_pages_hold_no_inline_script_or_style(client: TestClient) -> None:
    import re

    for path in ("/", "/datasets/1", "/dashboard", "/proposals/2", "/signin"):
        text = client.get(path).text
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), path
        assert not re.search(r"\sstyle=", text), path
        assert not re.search(r"\son[a-z]+=", text), path


def test_a_foreign_host_is_refused(client: TestClient) -> None:
    sign_in(client, "dev0")
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example", "[::2]:80"):
        reply = client.get("/api/v1/session", headers={"Host": host})
        assert reply.status_code == 400 and "Host" in reply.json()["error"], host
        assert "dev0" not in reply.text
    for host in ("localhost:8000", "127.0.0.1:5555", "[::1]:8000", "localhost"):
        assert client.get("/api/v1/session", headers={"Host": host}).status_code == 200, host


def test_an_extra_allowed_host_can_be_configured(app_ws: Workspace) -> None:
    with TestClient(create_app(app_ws, secret="s", allowed_hosts=["dash.example.org:8443"]),
                    base_url="http://dash.example.org:8443") as client:
        assert client.get("/api/v1/session").status_code == 200
        assert client.get("/api/v1/session", headers={"Host": "dash.example.org:80"}).status_code == 400
        assert client.get("/api/v1/session", headers={"Host": "localhost"}).status_code == 400


def _siwe_reply(client: TestClient, wallet: object, **changes: object) -> tuple[int, str]:
    template = client.get("/api/v1/auth/nonce").json()["message_template"]
    message = SiweMessage.parse(template.replace("{address}", wallet.address))  # type: ignore[attr-defined]
    text = SiweMessage(**(message.__dict__ | changes)).text()
    signature = wallet.sign_message(encode_defunct(text=text)).signature.to_0x_hex()  # type: ignore[attr-defined]
    reply = client.post("/api/v1/auth/siwe", json={"message": text, "signature": signature}, headers=csrf(client))
    return reply.status_code, reply.json().get("error") or reply.json().get("address")


def test_siwe_refuses_expired_foreign_and_altered_messages(client: TestClient) -> None:
    wallet = Account.create()
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused = {
        "expired": dict(expiration_time=past),
        "not yet valid": dict(not_before=later),
        "foreign URI": dict(uri="https://attacker.example/login"),
        "altered statement": dict(statement="I give my shares away."),
        "other chain": dict(chain_id=1),
        "other domain": dict(domain="attacker.example"),
        "old": dict(issued_at="2020-01-01T00:00:00Z", expiration_time=None),
    }
    for what, changes in refused.items():
        status, error = _siwe_reply(client, wallet, **changes)
        assert status == 400, what
        assert client.get("/api/v1/session").json()["address"] is None, what
    assert _siwe_reply(client, wallet) == (200, wallet.address)
    assert STATEMENT in client.get("/api/v1/auth/nonce").json()["message_template"]


def test_a_cookie_copied_before_sign_out_is_worthless(client: TestClient) -> None:
    sign_in(client, "dev0")
    stolen = client.cookies.get("databright_session")
    assert stolen and client.get("/api/v1/session").json()["name"] == "dev0"
    client.post("/api/v1/auth/signout", headers=csrf(client))
    thief = TestClient(client.app, cookies={"databright_session": stolen})
    assert thief.get("/api/v1/session").json()["address"] is None
    token = thief.get("/api/v1/session").json()["csrf_token"]
    vote = thief.post("/api/v1/proposals/2/votes", json={"support": True}, headers={"X-CSRF-Token": token})
    assert vote.status_code == 401
    forged = TestClient(client.app, cookies={"databright_session": stolen.rsplit(".", 1)[0] + ".0" * 16})
    assert forged.get("/api/v1/session").json()["address"] is None


def test_writes_are_rate_limited_per_account_and_per_client(strict: TestClient) -> None:
    headers = sign_in(strict, "dev2")  # one write: the sign-in
    codes = [strict.post("/api/v1/proposals/2/comments", json={"body": f"spam {i}"}, headers=headers).status_code
             for i in range(4)]
    assert codes == [201, 201, 201, 429]
    flooded = strict.post("/api/v1/proposals/2/comments", json={"body": "again"}, headers=headers)
    assert int(flooded.headers["retry-after"]) >= 1 and "too many requests" in flooded.json()["error"]
    # Another account from the same address has its own bucket, but the address's is nearly spent.
    other = TestClient(strict.app)
    other_headers = sign_in(other, "dev3")
    statuses = [other.post("/api/v1/proposals/2/comments", json={"body": "x"}, headers=other_headers).status_code
                for _ in range(3)]
    assert 429 in statuses


def test_password_guesses_are_rate_limited(strict: TestClient) -> None:
    guesses = [strict.post("/api/v1/auth/local", json={"account": "dev1", "password": f"guess{i}"},
                           headers=csrf(strict)) for i in range(3)]
    assert [g.status_code for g in guesses] == [403, 403, 429]
    assert "too many sign-in attempts" in guesses[2].json()["error"]
    # Even the right password waits now: the guesser cannot learn it by trying on.
    right = strict.post("/api/v1/auth/local", json={"account": "dev1", "password": "databright"},
                        headers=csrf(strict))
    assert right.status_code == 429


def test_no_comments_on_finalized_proposals(client: TestClient) -> None:
    headers = sign_in(client, "dev2")
    assert client.get("/api/v1/proposals/1").json()["status"] == "accepted"
    reply = client.post("/api/v1/proposals/1/comments", json={"body": "too late"}, headers=headers)
    assert reply.status_code == 400 and "already accepted" in reply.json()["error"]


def test_deeply_nested_json_is_refused_not_a_crash(client: TestClient) -> None:
    # Parsed by json.loads under py-evm's raised recursion limit, this body killed the server outright.
    deep = b"[" * 100_000 + b"]" * 100_000
    for kind in ("application/json", None):
        reply = client.post("/api/v1/auth/local", content=deep,
                            headers={"Content-Type": kind} if kind else {})
        assert reply.status_code == 400 and "nested deeper than 64 levels" in reply.json()["error"]
    assert client.get("/api/v1/session").status_code == 200
