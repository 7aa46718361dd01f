"""Coordinator attestation: who may coordinate, and what they prove about the code they run.

A coordinator sees whole datasets and decides who is paid, so ComputeMarket lets
only coordinators act whose *measurement* (a hash of the code they run) is on the
owner's allow-list and whose key was registered with attestation evidence. This
module is the interface that evidence passes through:

* ``measurement()`` — 32 bytes naming the code this process runs;
* ``quote(report_data)`` — evidence binding that measurement to ``report_data``
  (64 bytes at most; :func:`report_data_for` binds it to a coordinator key and a
  verifier's challenge);
* ``verify(quote, policy)`` — the measurement, binding and platform status a
  quote proves, or :class:`~databright.errors.AttestationError`.

Two backends implement it. :class:`SoftwareAttestation`, the default, measures
the installed package (see ``_measurement``) and signs with the coordinator's
Ethereum key: it proves which key speaks and what its operator claims to run,
nothing more — *software attestation: trust rests on the operator*, as every
place that shows it says. :class:`~databright.compute._dcap.DcapAttestation`
verifies Intel SGX and TDX DCAP quotes, where a CPU signs the measurement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address

from databright.compute._fingerprint import fingerprint, pinned_environment
from databright.compute._measurement import package_measurement
from databright.errors import AttestationError
from databright.storage import canonical_json

__all__ = [
    "Attestation",
    "Policy",
    "SOFTWARE_LABEL",
    "SoftwareAttestation",
    "Verified",
    "describe_environment",
    "report_data_for",
]

#: Shown wherever a software measurement or quote appears (str, JSON, docs).
SOFTWARE_LABEL = "software attestation: trust rests on the operator"

#: The largest report data a quote carries (the size of SGX/TDX REPORTDATA).
REPORT_DATA_SIZE = 64

_QUOTE_FORMAT = "databright-software-quote"
_QUOTE_VERSION = 1
_BINDING_TAG = b"databright coordinator key v1\x00"


def report_data_for(coordinator: str, challenge: bytes = b"") -> bytes:
    """The 64 report-data bytes binding a quote to a coordinator key and a challenge.

    SHA-512 over a fixed tag, the key's 20 address bytes and the challenge (a
    verifier's nonce, so an old quote cannot be replayed against a new one).
    """
    return hashlib.sha512(_BINDING_TAG + _address_bytes(coordinator) + challenge).digest()


@dataclass(frozen=True)
class Policy:
    """What a verifier accepts.

    ``measurements`` is the allow-list (32-byte values, as ComputeMarket stores
    them: the software measurement, an SGX MRENCLAVE, or for TDX the SHA-256 of
    MRTD and RTMR0-3). A quote must be bound either to ``coordinator`` (its
    report data equal to :func:`report_data_for` of that key and ``challenge``;
    a software quote must also be signed by it) or to exact ``report_data``.
    ``tcb_statuses`` are the DCAP platform statuses accepted; ``now`` (Unix
    seconds, default the current time) is when collateral must be valid.
    """

    measurements: frozenset[bytes]
    coordinator: str | None = None
    challenge: bytes = b""
    report_data: bytes | None = None
    tcb_statuses: frozenset[str] = field(default_factory=lambda: frozenset({"UpToDate"}))
    allow_debug: bool = False
    now: int | None = None

    def __post_init__(self) -> None:
        if self.coordinator is None and self.report_data is None:
            raise AttestationError("a policy must bind quotes to a coordinator key or report data")
        if self.coordinator is not None:
            _address_bytes(self.coordinator)
        if self.report_data is not None and len(self.report_data) > REPORT_DATA_SIZE:
            raise AttestationError(f"report data is at most {REPORT_DATA_SIZE} bytes")

    def check_binding(self, report_data: bytes) -> None:
        """Refuse ``report_data`` that binds neither the expected key nor the expected bytes."""
        padded = report_data.ljust(REPORT_DATA_SIZE, b"\0")
        if self.report_data is not None and padded != self.report_data.ljust(64, b"\0"):
            raise AttestationError("quote report data differs from the expected report data")
        if self.coordinator is not None:
            if padded != report_data_for(self.coordinator, self.challenge):
                raise AttestationError(
                    f"quote report data does not bind coordinator key {self.coordinator}"
                )

    def check_measurement(self, measurement: bytes) -> None:
        """Refuse a measurement that is not on the allow-list."""
        if measurement not in self.measurements:
            raise AttestationError(f"measurement 0x{measurement.hex()} is not allow-listed")


@dataclass(frozen=True)
class Verified:
    """What a quote proved: measurement, report data, platform status and who signed."""

    kind: str
    label: str
    measurement: bytes
    report_data: bytes
    tcb_status: str
    advisory_ids: tuple[str, ...] = ()
    signer: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (bytes as 0x-hex)."""
        return {
            "kind": self.kind,
            "label": self.label,
            "measurement": "0x" + self.measurement.hex(),
            "report_data": "0x" + self.report_data.hex(),
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "signer": self.signer,
        }


@runtime_checkable
class Attestation(Protocol):
    """An attestation backend (see the module docstring)."""

    kind: str
    label: str

    def measurement(self) -> bytes: ...

    def quote(self, report_data: bytes) -> bytes: ...

    def verify(self, quote: bytes, policy: Policy) -> Verified: ...


class SoftwareAttestation:
    """Measurement of the installed package, quotes signed with the coordinator's key.

    ``key`` (an account or private key) is needed to quote, not to verify.
    Verification proves the quote was signed by ``policy.coordinator`` over the
    measurement and report data it carries; that the measurement is what really
    runs rests on the operator.
    """

    kind = "software"
    label = SOFTWARE_LABEL

    def __init__(self, key: LocalAccount | bytes | str | None = None) -> None:
        self._account = Account.from_key(key) if isinstance(key, bytes | str) else key

    def __str__(self) -> str:
        key = self._account.address if self._account is not None else "no key"
        return f"{SOFTWARE_LABEL} (measurement 0x{self.measurement().hex()}, key {key})"

    def measurement(self) -> bytes:
        """SHA-256 of the installed package and its locked dependencies (``_measurement``)."""
        return package_measurement()

    def quote(self, report_data: bytes) -> bytes:
        """Canonical JSON carrying the measurement, report data and the key's EIP-191 signature."""
        if self._account is None:
            raise AttestationError("software quotes need the coordinator's key")
        if len(report_data) > REPORT_DATA_SIZE:
            raise AttestationError(f"report data is at most {REPORT_DATA_SIZE} bytes")
        body = _quote_body(self.measurement(), report_data, self._account.address)
        signed = self._account.sign_message(encode_defunct(primitive=canonical_json(body)))
        return canonical_json({**body, "signature": "0x" + signed.signature.hex()})

    def verify(self, quote: bytes, policy: Policy) -> Verified:
        """Check the signature, the signer, the binding and the allow-list."""
        claimed, signature = _parse_quote(quote)
        try:
            signer = str(
                Account.recover_message(
                    encode_defunct(primitive=canonical_json(claimed)), signature=signature
                )
            )
        except (ValueError, TypeError) as exc:
            raise AttestationError(f"software quote signature is unreadable ({exc})") from None
        if signer != claimed["signer"]:
            raise AttestationError("software quote is not signed by the key it names")
        if policy.coordinator is not None and signer != to_checksum_address(policy.coordinator):
            raise AttestationError(f"software quote is signed by {signer}, not {policy.coordinator}")
        measurement = bytes.fromhex(str(claimed["measurement"]))
        report_data = bytes.fromhex(str(claimed["report_data"]))
        policy.check_binding(report_data)
        policy.check_measurement(measurement)
        return Verified(self.kind, self.label, measurement, report_data, "software", (), signer)


def describe_environment(attestation: Attestation | None = None) -> dict[str, object]:
    """What ``databright compute attest`` prints: backend, measurement, fingerprint.

    The default backend is the software one; its label travels with it.
    """
    backend = attestation if attestation is not None else SoftwareAttestation()
    print_ = fingerprint()
    return {
        "attestation": {
            "kind": backend.kind,
            "label": backend.label,
            "measurement": "0x" + backend.measurement().hex(),
        },
        "fingerprint": print_.as_dict(),
        "pinned_environment": pinned_environment(),
    }


def _quote_body(measurement: bytes, report_data: bytes, signer: str) -> dict[str, object]:
    return {
        "format": _QUOTE_FORMAT,
        "version": _QUOTE_VERSION,
        "kind": SoftwareAttestation.kind,
        "label": SOFTWARE_LABEL,
        "measurement": measurement.hex(),
        "report_data": report_data.hex(),
        "signer": signer,
    }


def _parse_quote(quote: bytes) -> tuple[dict[str, object], str]:
    """The signed fields and the signature of a software quote, checked for shape."""
    try:
        data = json.loads(quote)
    except (ValueError, UnicodeDecodeError):
        raise AttestationError("not a software quote (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != _QUOTE_FORMAT:
        raise AttestationError("not a software quote")
    if data.get("version") != _QUOTE_VERSION:
        raise AttestationError(f"unsupported software quote version {data.get('version')!r}")
    signature = data.pop("signature", None)
    try:
        measurement = bytes.fromhex(str(data["measurement"]))
        report_data = bytes.fromhex(str(data["report_data"]))
        signer = to_checksum_address(str(data["signer"]))
    except (KeyError, ValueError):
        raise AttestationError("software quote has malformed fields") from None
    if len(measurement) != 32 or len(report_data) > REPORT_DATA_SIZE:
        raise AttestationError("software quote has malformed fields")
    expected = _quote_body(measurement, report_data, signer)
    if data != expected or not isinstance(signature, str):
        raise AttestationError("software quote has unexpected or missing fields")
    return expected, signature


def _address_bytes(address: str) -> bytes:
    if not is_hex_address(address):
        raise AttestationError(f"not an Ethereum address: {address!r}")
    return bytes.fromhex(address[2:] if address.startswith("0x") else address)
