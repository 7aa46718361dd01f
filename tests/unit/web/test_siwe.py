"""EIP-4361 messages against the public Sign-In with Ethereum test vectors (spruceid/siwe, see siwe_vectors/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from databright.web._siwe import SiweError, SiweMessage, parse_time

VECTORS = Path(__file__).parent / "siwe_vectors"
_NAMES = {"chainId": "chain_id", "issuedAt": "issued_at", "expirationTime": "expiration_time",
          "notBefore": "not_before", "requestId": "request_id"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text())
    return data


def message_of(fields: dict[str, Any]) -> SiweMessage:
    known = {"domain", "address", "uri", "version", "nonce", "statement", "scheme", "resources", *_NAMES}
    kwargs = {_NAMES.get(k, k): v for k, v in fields.items() if k in known}
    kwargs["resources"] = tuple(kwargs.get("resources") or ())
    return SiweMessage(**kwargs)


@pytest.mark.parametrize("name", sorted(load("parsing_positive")))
def test_parses_every_positive_vector(name: str) -> None:
    case = load("parsing_positive")[name]
    parsed = SiweMessage.parse(case["message"])
    assert parsed == message_of(case["fields"])
    assert parsed.text() == case["message"]  # what the wallet signed, byte for byte


@pytest.mark.parametrize("name", sorted(load("parsing_negative")))
def test_refuses_every_negative_vector(name: str) -> None:
    with pytest.raises(SiweError):
        SiweMessage.parse(load("parsing_negative")[name])


@pytest.mark.parametrize("name", sorted(load("verification_positive")))
def test_verifies_every_positive_vector(name: str) -> None:
    case = load("verification_positive")[name]
    message = message_of(case)
    now = parse_time(case["time"], "time") if "time" in case else None
    assert SiweMessage.parse(message.text()) == message
    assert message.verify(case["signature"], now=now, domain=case["domain"], nonce=case["nonce"]) == case["address"]


@pytest.mark.parametrize("name", sorted(load("verification_negative")))
def test_refuses_every_negative_verification(name: str) -> None:
    case = load("verification_negative")[name]
    now = parse_time(case["time"], "time") if "time" in case else None
    with pytest.raises(SiweError):
        message = SiweMessage.parse(message_of(case).text())
        message.verify(case["signature"], now=now, domain=case.get("domainBinding", case["domain"]),
                       nonce=case.get("matchNonce", case["nonce"]))


def _signed(**changes: Any) -> tuple[SiweMessage, str]:
    key = Account.create()
    fields: dict[str, Any] = dict(domain="127.0.0.1:8000", address=key.address, uri="http://127.0.0.1:8000",
                                  chain_id=1337, nonce="abcdef0123456789", issued_at="2026-01-01T00:00:00Z",
                                  statement="Sign in.", expiration_time="2026-01-01T00:10:00Z")
    message = SiweMessage(**(fields | changes))
    return message, key.sign_message(encode_defunct(text=message.text())).signature.to_0x_hex()


def test_bindings_refuse_expired_foreign_and_altered_messages() -> None:
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    binds: dict[str, Any] = dict(domain="127.0.0.1:8000", origin="http://127.0.0.1:8000", chain_id=1337,
                                 nonce="abcdef0123456789", statement="Sign in.")
    message, signature = _signed()
    assert message.verify(signature, now=now, **binds) == message.address
    cases = {"expired": _signed(expiration_time="2026-01-01T00:01:00Z"),
             "not yet valid": _signed(not_before="2026-01-01T00:09:00Z"),
             "foreign URI": _signed(uri="https://attacker.example/login"),
             "altered statement": _signed(statement="Send all my shares to the attacker."),
             "other chain": _signed(chain_id=1), "other domain": _signed(domain="attacker.example"),
             "other nonce": _signed(nonce="zzzzzzzz0000")}
    for what, (bad, sig) in cases.items():
        with pytest.raises(SiweError):
            bad.verify(sig, now=now, **binds)
            pytest.fail(what)
