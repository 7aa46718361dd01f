"""Sign-In with Ethereum (EIP-4361): the message, a strict parser of its ABNF, and its verification.

The message is plain text a wallet shows and signs (EIP-191). Parsing
follows the grammar line by line: every field in its place, each value in its
own syntax (an RFC 3986 authority and URIs, an EIP-55 address, RFC 3339
times, a nonce of at least eight alphanumerics); anything else is refused.
Verification then checks what a message binds: the signer, its time window,
and — as far as the caller asks — the domain, URI origin, chain, nonce and
statement the server issued.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from databright.errors import InputError

__all__ = ["SiweError", "SiweMessage", "parse_time"]

_HEADER = " wants you to sign in with your Ethereum account:"
# RFC 3986 pieces, as the EIP's ABNF uses them.
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_IP_LITERAL = r"\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[" + _UNRESERVED + _SUB_DELIMS + r":]+\]"
_AUTHORITY = re.compile(
    rf"^(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?(?:{_IP_LITERAL}|{_REG_NAME})(?::[0-9]*)?$")
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_URI = re.compile(rf"^{_SCHEME}:(?:[{_UNRESERVED}{_SUB_DELIMS}:@/?#\[\]]|{_PCT})*$")
_STATEMENT = re.compile(rf"^[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@ ]*$")
_REQUEST_ID = re.compile(rf"^(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})*$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,}$")
_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class SiweError(InputError):
    """A sign-in message that does not parse, or does not verify."""


def parse_time(value: str, what: str) -> datetime:
    """An RFC 3339 date-time (``2021-09-30T16:25:24.000Z``), checked as a real instant."""
    match = _TIME.match(value)
    if not match:
        raise SiweError(f"{what} is not an RFC 3339 time: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = ((fraction or ".")[1:] + "000000")[:6]
    offset = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{year}-{month}-{day}T{hour}:{minute}:{second}.{micro}{offset}")
    except ValueError as exc:
        raise SiweError(f"{what} is not a valid time: {value!r}") from exc


@dataclass(frozen=True)
class SiweMessage:
    """The fields of an EIP-4361 message; ``text()`` is exactly what the wallet signs."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    statement: str | None = None
    scheme: str | None = None
    version: str = "1"
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())

    def text(self) -> str:
        prefix = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [prefix + _HEADER, self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines.append("")
        lines += [f"URI: {self.uri}", f"Version: {self.version}", f"Chain ID: {self.chain_id}",
                  f"Nonce: {self.nonce}", f"Issued At: {self.issued_at}"]
        optional = (("Expiration Time", self.expiration_time), ("Not Before", self.not_before),
                    ("Request ID", self.request_id))
        lines += [f"{name}: {value}" for name, value in optional if value is not None]
        if self.resources:
            lines += ["Resources:", *(f"- {r}" for r in self.resources)]
        return "\n".join(lines)

    # -- parsing -------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> SiweMessage:
        """Parse ``text`` strictly by the EIP's grammar; SiweError names the first field that is wrong."""
        lines = text.split("\n")
        reader = _Lines(lines)
        head = reader.next("the first line")
        if not head.endswith(_HEADER):
            raise SiweError("the sign-in message does not start with '<domain> wants you to sign in …'")
        scheme, domain = _split_scheme(head[: -len(_HEADER)])
        address = reader.next("the address")
        if not _ADDRESS.match(address) or to_checksum_address(address) != address:
            raise SiweError(f"the address is not an EIP-55 checksummed address: {address!r}")
        reader.expect("", "an empty line after the address")
        statement: str | None = None
        if reader.peek() == "":
            reader.next("")  # no statement: the blank line stands in for it
        elif not (reader.peek() or "").startswith("URI: "):
            statement = reader.next("the statement")
            if not _STATEMENT.match(statement):
                raise SiweError("the statement holds characters EIP-4361 does not allow")
            reader.expect("", "an empty line after the statement")
        uri = reader.field("URI")
        if not _URI.match(uri):
            raise SiweError(f"the URI is not an RFC 3986 URI: {uri!r}")
        version = reader.field("Version")
        if version != "1":
            raise SiweError(f"version {version!r} is not 1")
        chain = reader.field("Chain ID")
        if not chain.isascii() or not chain.isdigit():
            raise SiweError(f"the chain id is not a number: {chain!r}")
        nonce = reader.field("Nonce")
        if not _NONCE.match(nonce):
            raise SiweError("the nonce is not at least 8 letters and digits")
        issued_at = reader.field("Issued At")
        parse_time(issued_at, "Issued At")
        expiration = reader.optional("Expiration Time")
        if expiration is not None:
            parse_time(expiration, "Expiration Time")
        not_before = reader.optional("Not Before")
        if not_before is not None:
            parse_time(not_before, "Not Before")
        request_id = reader.optional("Request ID")
        if request_id is not None and not _REQUEST_ID.match(request_id):
            raise SiweError("the request id holds characters EIP-4361 does not allow")
        resources: list[str] = []
        if reader.peek() == "Resources:":
            reader.next("")
            while reader.peek() is not None:
                line = reader.next("a resource")
                if not line.startswith("- ") or not _URI.match(line[2:]):
                    raise SiweError(f"a resource is not '- ' and an RFC 3986 URI: {line!r}")
                resources.append(line[2:])
        if reader.peek() is not None:
            raise SiweError(f"unexpected line in the sign-in message: {reader.peek()!r}")
        return cls(domain=domain, address=address, uri=uri, chain_id=int(chain), nonce=nonce, issued_at=issued_at,
                   statement=statement, scheme=scheme, version=version, expiration_time=expiration,
                   not_before=not_before, request_id=request_id, resources=tuple(resources))

    # -- verification --------------------------------------------------------------

    def verify(self, signature: str, *, now: datetime | None = None, domain: str | None = None,
               scheme: str | None = None, origin: str | None = None, chain_id: int | None = None,
               nonce: str | None = None, statement: str | None = None) -> str:
        """Check the signature and time window, and each binding given; returns the signer's address."""
        moment = now or datetime.now(UTC)
        if domain is not None and self.domain != domain:
            raise SiweError(f"the sign-in message is for {self.domain}, not {domain}")
        if scheme is not None and self.scheme not in (None, scheme):
            raise SiweError(f"the sign-in message is for scheme {self.scheme}, not {scheme}")
        if origin is not None and _origin(self.uri) != origin:
            raise SiweError(f"the sign-in message's URI {self.uri} is not on {origin}")
        if chain_id is not None and self.chain_id != chain_id:
            raise SiweError(f"the sign-in message is for chain {self.chain_id}, not chain {chain_id}")
        if nonce is not None and self.nonce != nonce:
            raise SiweError("the sign-in message has a stale nonce; request a new one")
        if statement is not None and self.statement != statement:
            raise SiweError("the sign-in message's statement is not the one this server issued")
        parse_time(self.issued_at, "Issued At")
        if self.expiration_time is not None and parse_time(self.expiration_time, "Expiration Time") <= moment:
            raise SiweError("the sign-in message has expired; sign in again")
        if self.not_before is not None and parse_time(self.not_before, "Not Before") > moment:
            raise SiweError("the sign-in message is not valid yet")
        try:
            signer = str(Account.recover_message(encode_defunct(text=self.text()), signature=signature))
        except Exception as exc:  # eth-account raises several types for bad signatures
            raise SiweError("the signature is malformed") from exc
        if signer != self.address:
            raise SiweError("the signature does not match the address in the message")
        return signer


def _split_scheme(prefix: str) -> tuple[str | None, str]:
    scheme: str | None = None
    if "://" in prefix:
        scheme, _, prefix = prefix.partition("://")
        if not re.fullmatch(_SCHEME, scheme):
            raise SiweError(f"the sign-in message's scheme is not valid: {scheme!r}")
    if not prefix or not _AUTHORITY.match(prefix):
        raise SiweError(f"the sign-in message's domain is not an RFC 3986 authority: {prefix!r}")
    return scheme, prefix


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}".lower()


class _Lines:
    """The message's lines, read in order, so a field out of place is reported as missing there."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._at = 0

    def peek(self) -> str | None:
        return self._lines[self._at] if self._at < len(self._lines) else None

    def next(self, what: str) -> str:
        line = self.peek()
        if line is None:
            raise SiweError(f"the sign-in message ends before {what}")
        self._at += 1
        return line

    def expect(self, value: str, what: str) -> None:
        if self.next(what) != value:
            raise SiweError(f"the sign-in message lacks {what}")

    def field(self, name: str) -> str:
        line = self.next(f"its '{name}' line")
        if not line.startswith(f"{name}: "):
            raise SiweError(f"the sign-in message has no '{name}:' line where EIP-4361 puts it")
        return line[len(name) + 2:]

    def optional(self, name: str) -> str | None:
        line = self.peek()
        return self.field(name) if line is not None and line.startswith(f"{name}: ") else None
