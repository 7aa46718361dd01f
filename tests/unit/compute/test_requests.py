"""Worker requests: the digest is what wallets sign, and tampering or replays are refused."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from databright.compute import RequestDomain, RequestSigner
from databright.errors import RequestError

DOMAIN = RequestDomain(1337, "0x" + "c0" * 20)


def test_signature_is_the_wallet_signature_of_the_typed_data() -> None:
    key = os.urandom(32)
    signer = RequestSigner(DOMAIN, key)
    headers = signer.headers("POST", "/v1/claim", b"{}")
    worker, nonce, expiry, signature = headers.values()
    message = DOMAIN.typed_data(worker, "POST", "/v1/claim", hashlib.sha256(b"{}").digest(), int(nonce), int(expiry))
    wallet = Account.from_key(key).sign_message(encode_typed_data(full_message=message))
    assert "0x" + bytes(wallet.signature).hex() == signature
    assert DOMAIN.verify("POST", "/v1/claim", b"{}", headers).worker == Account.from_key(key).address


def test_tampered_body_path_or_domain_is_refused() -> None:
    signer = RequestSigner(DOMAIN, os.urandom(32))
    headers = signer.headers("POST", "/v1/leases/1/result", b"result")
    for method, path, body, domain in [("POST", "/v1/leases/1/result", b"other", DOMAIN),
                                       ("POST", "/v1/leases/2/result", b"result", DOMAIN),
                                       ("GET", "/v1/leases/1/result", b"result", DOMAIN),
                                       ("POST", "/v1/leases/1/result", b"result", RequestDomain(1, DOMAIN.contract))]:
        with pytest.raises(RequestError, match="does not match"):
            domain.verify(method, path, body, headers)


def test_expired_unsigned_and_far_future_requests_are_refused() -> None:
    signer = RequestSigner(DOMAIN, os.urandom(32))
    headers = signer.headers("GET", "/v1/blobs/x")
    with pytest.raises(RequestError, match="expired"):
        DOMAIN.verify("GET", "/v1/blobs/x", b"", headers, now=time.time() + 3600)
    with pytest.raises(RequestError, match="more than"):
        DOMAIN.verify("GET", "/v1/blobs/x", b"", headers, now=time.time() - 3600)
    with pytest.raises(RequestError, match="unsigned"):
        DOMAIN.verify("GET", "/v1/blobs/x", b"", {})
