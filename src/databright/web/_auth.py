"""Sign-In with Ethereum (EIP-4361) and signed comments (EIP-191 personal messages).

The server builds the exact text to sign, so verifying is rebuilding it from
the claimed fields and recovering the signer: a message that differs in any
byte, or was signed by another key, is refused.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from databright.errors import InputError

__all__ = ["comment_date", "comment_message", "new_nonce", "recover", "siwe_message", "verify_siwe"]

STATEMENT = "Sign in to DataBright to vote, comment and withdraw with this account."
_FIELD = re.compile(r"^(URI|Version|Chain ID|Nonce|Issued At): (.+)$", re.MULTILINE)


def new_nonce() -> str:
    return secrets.token_hex(8)


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def siwe_message(domain: str, address: str, uri: str, chain_id: int, nonce: str, issued_at: str | None = None) -> str:
    """An EIP-4361 message, as a browser wallet shows it."""
    return (
        f"{domain} wants you to sign in with your Ethereum account:\n{to_checksum_address(address)}\n\n"
        f"{STATEMENT}\n\nURI: {uri}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\n"
        f"Issued At: {issued_at or _now_iso()}"
    )


def recover(message: str, signature: str) -> str:
    """The address that signed ``message`` (EIP-191), or InputError."""
    try:
        return str(Account.recover_message(encode_defunct(text=message), signature=signature))
    except Exception as exc:  # eth-account raises several types for bad signatures
        raise InputError("the signature is malformed") from exc


def verify_siwe(message: str, signature: str, *, domain: str, nonce: str, chain_id: int) -> str:
    """Check an EIP-4361 message against this server's domain, nonce and chain; returns the address."""
    lines = message.split("\n")
    if len(lines) < 3 or lines[0] != f"{domain} wants you to sign in with your Ethereum account:":
        raise InputError(f"the sign-in message is not for {domain}")
    fields = dict(_FIELD.findall(message))
    if fields.get("Nonce") != nonce:
        raise InputError("the sign-in message has a stale nonce; request a new one")
    if fields.get("Chain ID") != str(chain_id) or fields.get("Version") != "1":
        raise InputError(f"the sign-in message is not for chain {chain_id}")
    try:
        claimed = to_checksum_address(lines[1].strip())
    except ValueError as exc:
        raise InputError("the sign-in message has no valid address") from exc
    if recover(message, signature) != claimed:
        raise InputError("the signature does not match the address in the message")
    return claimed


def comment_message(proposal_id: int, chain_id: int, author: str, body: str, date: str) -> str:
    """What an author signs to comment on a proposal."""
    return (f"DataBright comment on proposal {proposal_id} (chain {chain_id})\n"
            f"Author: {to_checksum_address(author)}\nDate: {date}\n\n{body}")


def comment_date() -> str:
    return _now_iso()
