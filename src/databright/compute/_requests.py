"""Signed worker requests: EIP-712 ``WorkerRequest`` typed data in four HTTP headers.

Workers pull over plain HTTP(S) and open no port, so the coordinator knows who
is asking only from the signature: every request signs (worker, method, path,
sha256 of the body, nonce, expiry) under the domain {"DataBright Compute", "1",
chainId, ComputeMarket}. The domain stops replays on another chain or market,
the body digest ties the signature to exactly the bytes sent (a submitted
result's signature is the evidence a slash cites), the expiry bounds how long a
captured request stays usable and the nonce, which the coordinator records as
used, stops a replay within that time. Signing and recovery use libsecp256k1
directly on the 32-byte digest; the digest is the one wallets compute for
``eth_signTypedData_v4`` (a test checks that against eth_account).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coincurve import PrivateKey
from eth_hash.auto import keccak
from eth_utils.address import is_address, to_checksum_address

from databright.chain import domain_separator, recover_signer, typed_digest
from databright.errors import RequestError

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "HEADERS",
    "RequestDomain",
    "RequestSigner",
    "SignedRequest",
]

DOMAIN_NAME = "DataBright Compute"
DOMAIN_VERSION = "1"
WORKER_REQUEST = "WorkerRequest(address worker,string method,string path,bytes32 bodyDigest,uint256 nonce,uint256 expiry)"
_TYPEHASH = keccak(WORKER_REQUEST.encode())
HEADERS = ("X-DataBright-Worker", "X-DataBright-Nonce", "X-DataBright-Expiry", "X-DataBright-Signature")
#: A request may not claim to stay valid for longer than this (seconds ahead of the coordinator's clock).
MAX_LIFETIME = 300
_UINT256 = 2**256


@dataclass(frozen=True)
class SignedRequest:
    """A request whose signature checked out (the nonce is not yet spent: the store spends it)."""

    worker: str
    method: str
    path: str
    body_digest: bytes
    nonce: int
    expiry: int
    signature: bytes

    def evidence(self) -> dict[str, Any]:
        """Everything a third party needs to re-verify that ``worker`` sent this request."""
        return {"worker": self.worker, "method": self.method, "path": self.path,
                "bodyDigest": "0x" + self.body_digest.hex(), "nonce": self.nonce, "expiry": self.expiry,
                "signature": "0x" + self.signature.hex(), "type": WORKER_REQUEST}


@dataclass(frozen=True)
class RequestDomain:
    """The EIP-712 domain of one ComputeMarket deployment."""

    chain_id: int
    contract: str
    _separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_address(self.contract):
            raise RequestError(f"not a contract address: {self.contract!r}")
        object.__setattr__(self, "contract", to_checksum_address(self.contract))
        object.__setattr__(self, "_separator",
                           domain_separator(DOMAIN_NAME, DOMAIN_VERSION, self.chain_id, self.contract))

    def typed_data(self, worker: str, method: str, path: str, body_digest: bytes, nonce: int,
                   expiry: int) -> dict[str, Any]:
        """The full message as a wallet's ``eth_signTypedData_v4`` takes it."""
        fields = [("worker", "address"), ("method", "string"), ("path", "string"), ("bodyDigest", "bytes32"),
                  ("nonce", "uint256"), ("expiry", "uint256")]
        return {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "WorkerRequest": [{"name": n, "type": t} for n, t in fields],
            },
            "primaryType": "WorkerRequest",
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id,
                       "verifyingContract": self.contract},
            "message": {"worker": worker, "method": method, "path": path, "bodyDigest": body_digest,
                        "nonce": nonce, "expiry": expiry},
        }

    def digest(self, worker: str, method: str, path: str, body_digest: bytes, nonce: int, expiry: int) -> bytes:
        struct = keccak(
            _TYPEHASH
            + bytes.fromhex(worker[2:]).rjust(32, b"\0")
            + keccak(method.encode())
            + keccak(path.encode())
            + body_digest
            + nonce.to_bytes(32, "big")
            + expiry.to_bytes(32, "big")
        )
        return typed_digest(self._separator, struct)

    def verify(self, method: str, path: str, body: bytes, headers: Mapping[str, str],
               now: float | None = None) -> SignedRequest:
        """Check a request's headers against its method, path and body; raises :class:`RequestError`."""
        values = [headers.get(name) for name in HEADERS]
        if any(v is None for v in values):
            raise RequestError("unsigned request: it needs the X-DataBright-Worker, -Nonce, -Expiry and "
                               "-Signature headers")
        worker, nonce_s, expiry_s, signature_s = (str(v) for v in values)
        try:
            nonce, expiry = int(nonce_s), int(expiry_s)
            signature = bytes.fromhex(signature_s.removeprefix("0x"))
        except ValueError:
            raise RequestError("malformed request signature headers") from None
        if not is_address(worker) or not (0 <= nonce < _UINT256 and 0 <= expiry < _UINT256):
            raise RequestError("malformed request signature headers")
        worker = to_checksum_address(worker)
        clock = time.time() if now is None else now
        if expiry < clock:
            raise RequestError("request expired")
        if expiry > clock + MAX_LIFETIME:
            raise RequestError(f"request expiry is more than {MAX_LIFETIME}s ahead")
        body_digest = hashlib.sha256(body).digest()
        signer = recover_signer(self.digest(worker, method, path, body_digest, nonce, expiry), signature)
        if signer != worker:
            raise RequestError("request signature does not match its worker, method, path and body")
        return SignedRequest(worker, method, path, body_digest, nonce, expiry, signature)


class RequestSigner:
    """Signs one worker's requests; nonces increase strictly from the current time in nanoseconds."""

    def __init__(self, domain: RequestDomain, private_key: bytes, lifetime: int = 60) -> None:
        self.domain = domain
        self._key = PrivateKey(private_key)
        self.address = to_checksum_address(keccak(self._key.public_key.format(compressed=False)[1:])[-20:])
        self.lifetime = lifetime
        self._nonce = 0
        # A worker signs from several threads (heartbeats, a stage's rendezvous): two must never share a nonce.
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        """The private key, for the worker's other typed data (its training commitments)."""
        return bytes(self._key.secret)

    def headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        with self._lock:
            self._nonce = nonce = max(self._nonce + 1, time.time_ns())
        expiry = int(time.time()) + self.lifetime
        digest = self.domain.digest(self.address, method, path, hashlib.sha256(body).digest(), nonce, expiry)
        raw = self._key.sign_recoverable(digest, hasher=None)
        signature = raw[:64] + bytes([raw[64] + 27])
        return dict(zip(HEADERS, (self.address, str(nonce), str(expiry), "0x" + signature.hex())))

    def stage_key(self) -> bytes:
        """The private key a stage proves this worker's identity with on the stage channel."""
        return bytes(self._key.secret)
