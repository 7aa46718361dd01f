"""Payment-channel vouchers: EIP-712 typed data signed by a channel's user.

A voucher says "channel C may pay out up to A wei in total". Vouchers are
cumulative, so the latest one supersedes every earlier one and the model's
owner only ever keeps and redeems one per channel. The domain binds the chain
id and the ModelMarket address, so a voucher cannot be replayed on another
chain or contract.

Signing goes through eth_account's ``encode_typed_data`` (what wallets do for
``eth_signTypedData_v4``). Verification is on the prediction server's hot path:
the domain separator is hashed once per :class:`VoucherDomain`, and the signer
is recovered with libsecp256k1 (coincurve) from the digest, which takes tens of
microseconds instead of eth_account's milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from databright.chain import domain_separator, recover_signer, typed_digest
from databright.errors import PaymentError

__all__ = ["DOMAIN_NAME", "DOMAIN_VERSION", "Voucher", "VoucherDomain"]

DOMAIN_NAME = "DataBright ModelMarket"
DOMAIN_VERSION = "1"
VOUCHER_TYPES = {"Voucher": [{"name": "channel", "type": "uint256"}, {"name": "amount", "type": "uint256"}]}
_VOUCHER_TYPEHASH = keccak(b"Voucher(uint256 channel,uint256 amount)")
_UINT256 = 2**256


@dataclass(frozen=True)
class Voucher:
    """A signed cumulative payment: ``amount`` wei in total from ``channel``."""

    channel: int
    amount: int
    signature: bytes

    def to_header(self) -> str:
        """The compact form carried in the ``X-Payment-Voucher`` HTTP header."""
        return f"{self.channel}:{self.amount}:0x{self.signature.hex()}"

    @classmethod
    def from_header(cls, value: str) -> Voucher:
        parts = value.strip().split(":")
        if len(parts) != 3:
            raise PaymentError("a voucher is channel:amount:0xsignature")
        try:
            channel, amount = int(parts[0]), int(parts[1])
            signature = bytes.fromhex(parts[2].removeprefix("0x"))
        except ValueError as exc:
            raise PaymentError(f"malformed voucher: {exc}") from exc
        if not (0 < channel < _UINT256 and 0 <= amount < _UINT256):
            raise PaymentError("voucher channel or amount out of range")
        if len(signature) != 65:
            raise PaymentError("a voucher signature has 65 bytes")
        return cls(channel, amount, signature)


@dataclass(frozen=True)
class VoucherDomain:
    """The EIP-712 domain of one ModelMarket deployment."""

    chain_id: int
    contract: str
    _separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        contract = to_checksum_address(self.contract)
        object.__setattr__(self, "contract", contract)
        separator = domain_separator(DOMAIN_NAME, DOMAIN_VERSION, self.chain_id, contract)
        object.__setattr__(self, "_separator", separator)

    def typed_data(self, channel: int, amount: int) -> dict[str, Any]:
        """The full EIP-712 message, as a wallet's ``eth_signTypedData_v4`` takes it."""
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                **VOUCHER_TYPES,
            },
            "primaryType": "Voucher",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": self.chain_id,
                "verifyingContract": self.contract,
            },
            "message": {"channel": channel, "amount": amount},
        }

    def sign(self, account: LocalAccount, channel: int, amount: int) -> Voucher:
        signed = account.sign_message(encode_typed_data(full_message=self.typed_data(channel, amount)))
        return Voucher(channel, amount, bytes(signed.signature))

    def digest(self, channel: int, amount: int) -> bytes:
        """The 32 bytes that are signed (what ModelMarket.voucher_digest returns)."""
        struct = keccak(_VOUCHER_TYPEHASH + channel.to_bytes(32, "big") + amount.to_bytes(32, "big"))
        return typed_digest(self._separator, struct)

    def signer(self, voucher: Voucher) -> str:
        """The checksummed address that signed ``voucher``; raises PaymentError if none."""
        if len(voucher.signature) != 65:
            raise PaymentError("a voucher signature has 65 bytes")
        signer = recover_signer(self.digest(voucher.channel, voucher.amount), voucher.signature)
        if signer is None:
            raise PaymentError("invalid voucher signature")
        return signer
