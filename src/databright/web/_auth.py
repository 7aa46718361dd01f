"""Sign-In with Ethereum (EIP-4361) and signed comments (EIP-191 personal messages).

The server builds the exact text to sign. A sign-in message is parsed by the
EIP's grammar (``_siwe``) and must carry what this server issued: its domain,
URI origin, chain, an unused nonce and the statement, inside its time window.
A comment is verified by rebuilding its text from the claimed fields and
recovering the signer: a message that differs in any byte, or was signed by
another key, is refused.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from databright.errors import InputError
from databright.web._siwe import SiweMessage, parse_time

__all__ = [
    "MAX_SKEW", "SIWE_TTL", "STATEMENT", "check_signed_now", "comment_date", "comment_message", "new_nonce", "recover", "siwe_message", "verify_siwe",
]

STATEMENT = "Sign in to DataBright to vote, comment and withdraw with this account."
SIWE_TTL = timedelta(minutes=10)


def new_nonce() -> str:
    return secrets.token_hex(8)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _now_iso() -> str:
    return _iso(datetime.now(UTC))


def siwe_message(domain: str, address: str, uri: str, chain_id: int, nonce: str, issued_at: str | None = None) -> str:
    """The EIP-4361 message this server asks a wallet to sign: valid for ``SIWE_TTL`` from its issue."""
    issued = parse_time(issued_at, "Issued At") if issued_at else datetime.now(UTC).replace(microsecond=0)
    return SiweMessage(domain=domain, address=to_checksum_address(address), uri=uri, chain_id=chain_id, nonce=nonce,
                       issued_at=_iso(issued), statement=STATEMENT, expiration_time=_iso(issued + SIWE_TTL)).text()


def recover(message: str, signature: str) -> str:
    """The address that signed ``message`` (EIP-191), or InputError."""
    try:
        return str(Account.recover_message(encode_defunct(text=message), signature=signature))
    except Exception as exc:  # eth-account raises several types for bad signatures
        raise InputError("the signature is malformed") from exc


def verify_siwe(message: str, signature: str, *, domain: str, origin: str, nonce: str, chain_id: int) -> str:
    """Check an EIP-4361 message against what this server issued: domain, URI origin, chain, nonce, statement.

    Every rule of the EIP applies (strict parsing, expiry, not-before); the
    message must also be no older than ``SIWE_TTL``. Returns the signer.
    """
    parsed = SiweMessage.parse(message)
    now = datetime.now(UTC)
    if now - parse_time(parsed.issued_at, "Issued At") > SIWE_TTL:
        raise InputError("the sign-in message is too old; request a new one")
    return parsed.verify(signature, now=now, domain=domain, scheme=origin.split("://")[0], origin=origin,
                         chain_id=chain_id, nonce=nonce, statement=STATEMENT)


def comment_message(proposal_id: int, chain_id: int, author: str, body: str, date: str) -> str:
    """What an author signs to comment on a proposal."""
    return (f"DataBright comment on proposal {proposal_id} (chain {chain_id})\n"
            f"Author: {to_checksum_address(author)}\nDate: {date}\n\n{body}")


MAX_SKEW = timedelta(minutes=10)


def check_signed_now(date: str, what: str) -> None:
    """Refuse a browser-signed ``date`` (ISO, with zone) more than ``MAX_SKEW`` from now."""
    try:
        when = datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{what}'s date is not an ISO timestamp") from exc
    if when.tzinfo is None or abs(datetime.now(UTC) - when) > MAX_SKEW:
        raise InputError(f"{what}'s date is too far from now; sign it again")


def comment_date() -> str:
    return _now_iso()
