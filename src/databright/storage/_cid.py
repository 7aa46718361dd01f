"""Content identifiers (CIDs) for blobs.

DataBright names every blob by a CIDv1 with the *raw* codec (0x55) and a
sha2-256 multihash, written in multibase base32 lower case (prefix ``b``,
RFC 4648 alphabet, no padding)::

    cid = "b" + base32lower(0x01 0x55 0x12 0x20 ‖ sha256(content))

Such a CID is fully determined by the 32-byte digest, which is what the
contracts store as ``bytes32`` (see docs/protocol.md).

For content of at most one IPFS block (262,144 bytes, the default chunker of
``ipfs add``) this is exactly the CID printed by
``ipfs add --cid-version=1 --raw-leaves``. For larger content ``ipfs add``
builds a dag-pb tree of chunks and prints a different CID; DataBright's CID
stays the raw CID of the whole content, so the same file has one name however
it is stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import NewType

from ._errors import InvalidCID

CID = NewType("CID", str)
"""A CIDv1 raw/sha2-256 string in base32 lower case, e.g. ``bafkrei…``."""

DIGEST_SIZE = 32
_CID_VERSION = 0x01
_RAW_CODEC = 0x55
_SHA2_256 = 0x12
_PREFIX = bytes((_CID_VERSION, _RAW_CODEC, _SHA2_256, DIGEST_SIZE))
_MULTIBASE_BASE32_LOWER = "b"
_BASE32_LOWER = re.compile(r"[a-z2-7]+")
_CID_LENGTH = 1 + -(-(len(_PREFIX) + DIGEST_SIZE) * 8 // 5)  # 59 characters

# The standard library's base32 codec loops in Python (~20 µs a CID); a proposal
# names every item by CID, so both directions go through int arithmetic instead:
# the 36 bytes, shifted left by the 2 padding bits, are 58 base-32 digits.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # 10 bits -> 2 digits
_TO_INT_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_PAD_BITS = 2
_RAW_SIZE = len(_PREFIX) + DIGEST_SIZE


def cid_from_digest(digest: bytes) -> CID:
    """Return the CID of content whose sha-256 digest is ``digest``."""
    if len(digest) != DIGEST_SIZE:
        raise InvalidCID(f"a sha-256 digest is {DIGEST_SIZE} bytes, got {len(digest)}")
    n = int.from_bytes(_PREFIX + bytes(digest), "big") << _PAD_BITS
    pairs = [_PAIRS[(n >> shift) & 0x3FF] for shift in range(280, -1, -10)]
    return CID(_MULTIBASE_BASE32_LOWER + "".join(pairs))


def cid_of(data: bytes) -> CID:
    """Return the CID of ``data``."""
    return cid_from_digest(hashlib.sha256(data).digest())


def digest_of_cid(cid: str) -> bytes:
    """Return the 32-byte sha-256 digest inside ``cid``; raise InvalidCID if malformed."""
    if not isinstance(cid, str):
        raise InvalidCID(f"a CID is a string, got {type(cid).__name__}")
    if not cid:
        raise InvalidCID("empty CID")
    shown = cid if len(cid) <= 80 else cid[:77] + "..."
    if cid[0] != _MULTIBASE_BASE32_LOWER:
        raise InvalidCID(
            f"CID {shown!r}: multibase prefix {cid[0]!r} is not 'b' (base32 lower case)"
        )
    body = cid[1:]
    if not _BASE32_LOWER.fullmatch(body):
        raise InvalidCID(f"CID {shown!r}: not lower-case base32 (a-z, 2-7, no padding)")
    if len(cid) == _CID_LENGTH:
        n = int(body.translate(_TO_INT_DIGITS), 32)
        raw = (n >> _PAD_BITS).to_bytes(_RAW_SIZE, "big")
        if raw[: len(_PREFIX)] == _PREFIX and not n & ((1 << _PAD_BITS) - 1):
            return raw[len(_PREFIX) :]
    return _checked_digest(cid, body, shown)


def _checked_digest(cid: str, body: str, shown: str) -> bytes:
    """The slow path of :func:`digest_of_cid`: says precisely what is wrong with ``cid``."""
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except binascii.Error as exc:
        raise InvalidCID(f"CID {shown!r}: invalid base32 length") from exc
    if len(raw) < 2:
        raise InvalidCID(f"CID {shown!r}: too short")
    if raw[0] != _CID_VERSION:
        raise InvalidCID(f"CID {shown!r}: version {raw[0]} is not CIDv1")
    if raw[1] != _RAW_CODEC:
        raise InvalidCID(f"CID {shown!r}: codec 0x{raw[1]:02x} is not raw (0x55)")
    if len(raw) < 4 or raw[2] != _SHA2_256:
        found = f"0x{raw[2]:02x}" if len(raw) > 2 else "none"
        raise InvalidCID(f"CID {shown!r}: hash function {found} is not sha2-256 (0x12)")
    if raw[3] != DIGEST_SIZE or len(raw) != len(_PREFIX) + DIGEST_SIZE:
        raise InvalidCID(
            f"CID {shown!r}: digest length {len(raw) - len(_PREFIX)} "
            f"(declared {raw[3]}) is not {DIGEST_SIZE}"
        )
    if len(cid) != _CID_LENGTH:
        # Trailing characters that decode to no whole byte: not the canonical spelling.
        raise InvalidCID(f"CID {shown!r}: {len(cid)} characters, expected {_CID_LENGTH}")
    digest = raw[len(_PREFIX) :]
    if cid_from_digest(digest) != cid:
        raise InvalidCID(f"CID {shown!r}: non-canonical base32 (stray low bits)")
    return digest


def is_cid(value: object) -> bool:
    """Return whether ``value`` is a well-formed CID string."""
    try:
        digest_of_cid(value)  # type: ignore[arg-type]
    except InvalidCID:
        return False
    return True
