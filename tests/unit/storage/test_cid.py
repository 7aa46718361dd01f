from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databright.storage import InvalidCID, cid_from_digest, cid_of, digest_of_cid, is_cid

# Published CIDs printed by `ipfs add --cid-version=1 --raw-leaves` (single block).
VECTORS = [
    (b"", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"hello world", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    (b"hello world\n", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
]


def _encode(raw: bytes, prefix: str = "b") -> str:
    return prefix + base64.b32encode(raw).decode().rstrip("=").lower()


@pytest.mark.parametrize(("data", "cid"), VECTORS)
def test_known_vectors(data: bytes, cid: str) -> None:
    assert cid_of(data) == cid
    assert digest_of_cid(cid) == hashlib.sha256(data).digest()


def test_layout_matches_protocol() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert cid_from_digest(digest) == _encode(bytes([0x01, 0x55, 0x12, 0x20]) + digest)
    assert len(cid_of(b"x")) == 59
    assert cid_of(b"x").startswith("bafkrei")


@given(st.binary(max_size=2048))
def test_round_trip(data: bytes) -> None:
    cid = cid_of(data)
    assert is_cid(cid)
    assert digest_of_cid(cid) == hashlib.sha256(data).digest()
    assert cid_from_digest(digest_of_cid(cid)) == cid


@given(st.binary(min_size=32, max_size=32))
def test_digest_round_trip(digest: bytes) -> None:
    assert digest_of_cid(cid_from_digest(digest)) == digest


GOOD = VECTORS[0][1]
DIGEST = hashlib.sha256(b"").digest()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "empty"),
        ("B" + GOOD[1:].upper(), "multibase"),
        ("z" + GOOD[1:], "multibase"),
        (GOOD.upper(), "multibase"),
        ("b" + GOOD[1:-1] + "A", "lower-case base32"),
        (GOOD + "=", "lower-case base32"),
        ("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR", "multibase"),
        (_encode(bytes([0x00, 0x55, 0x12, 0x20]) + DIGEST), "version"),
        (_encode(bytes([0x01, 0x70, 0x12, 0x20]) + DIGEST), "codec"),
        (_encode(bytes([0x01, 0x55, 0x13, 0x20]) + DIGEST), "hash function"),
        (_encode(bytes([0x01, 0x55, 0x12, 0x20]) + DIGEST[:31]), "digest length"),
        (_encode(bytes([0x01, 0x55, 0x12, 0x20]) + DIGEST + b"\0"), "digest length"),
        (_encode(bytes([0x01, 0x55, 0x12, 0x1F]) + DIGEST[:31]), "digest length"),
        (GOOD[:-1] + "l", "non-canonical"),  # same bytes, stray low bits set
        ("b", "base32"),
        ("bae", "too short"),
        ("baaa", "invalid base32 length"),
    ],
)
def test_strict_parsing(bad: str, reason: str) -> None:
    with pytest.raises(InvalidCID, match=reason) as info:
        digest_of_cid(bad)
    assert "\n" not in str(info.value)
    assert not is_cid(bad)


def test_non_string_and_bad_digest() -> None:
    with pytest.raises(InvalidCID):
        digest_of_cid(b"bafk")  # type: ignore[arg-type]
    with pytest.raises(InvalidCID, match="32 bytes"):
        cid_from_digest(b"\0" * 31)


@given(st.text(max_size=80))
def test_random_text_never_crashes(text: str) -> None:
    try:
        digest = digest_of_cid(text)
    except InvalidCID:
        return
    assert cid_from_digest(digest) == text
