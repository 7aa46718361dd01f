"""The channel between the stage workers of a split job: tokens and raw-tensor frames.

The coordinator authorises each cut of a job with a :class:`StageToken`: EIP-712
typed data binding (job, task, stage, sending worker, receiving worker, expiry),
where the task is the coordinator's number for one pipeline of one round, so a
token of an earlier round or another replica opens no channel,
signed with the coordinator's key. The receiving worker, which listens on
loopback or the job's network (workers still open no port towards the
coordinator), opens every connection with a fresh 32-byte challenge; the sender
answers with the token and its own signature over (token digest, challenge),
so a token copied off the wire is useless without the sender's key, and a
token already used is refused.

After that only frames cross: a fixed header (magic ``DBST``, version, kind,
dtype, number of dimensions, step, payload length, then one uint32 per
dimension), then the tensor's raw little-endian bytes. Nothing is unpickled or
executed; the receiver checks every field against what it expects (kind, step,
dtype, shape) and a size limit before reading the payload.

Frames are copied once in user space at most: the sender hands the tensor's own
memory to the kernel next to the header (one ``sendmsg``), the receiver reads the
payload straight into a tensor it allocated after the checks (``recv_into``).
Activations cross every step and the peer waits for each one, so
:func:`low_latency` turns Nagle's algorithm off on the channel's sockets.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
from coincurve import PrivateKey
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from torch import Tensor

from databright.chain import domain_separator, recover_signer, typed_digest
from databright.compute._requests import DOMAIN_NAME, DOMAIN_VERSION, RequestDomain
from databright.errors import ComputeError

__all__ = [
    "MAX_FRAME_BYTES",
    "ChannelError",
    "Kind",
    "StageToken",
    "accept_stage",
    "connect_stage",
    "low_latency",
    "read_frame",
    "write_frame",
]

MAGIC = b"DBST"
VERSION = 1
#: Largest payload a receiver reads (a batch of activations is far smaller).
MAX_FRAME_BYTES = 64 * 2**20
MAX_DIMS = 8
_HEADER = struct.Struct("<4sBBBBQQ")
STAGE_TOKEN = (
    "StageToken(uint256 job,uint256 task,uint256 stage,address sender,address receiver,uint256 expiry)"
)
_TYPEHASH = keccak(STAGE_TOKEN.encode())
_TOKEN = struct.Struct("<32s32s32s20s20s8s65s")
_HELLO_BYTES = _TOKEN.size + 65


class ChannelError(ComputeError):
    """A stage peer sent something the channel refuses."""


class Kind(IntEnum):
    HELLO = 1
    ACTIVATION = 2
    GRADIENT = 3
    LABELS = 4


_DTYPES: dict[int, tuple[torch.dtype, np.dtype[np.generic]]] = {
    1: (torch.float32, np.dtype("<f4")),
    2: (torch.int64, np.dtype("<i8")),
}
_CODES = {torch_dtype: code for code, (torch_dtype, _) in _DTYPES.items()}


def _sign(key: PrivateKey, digest: bytes) -> bytes:
    raw = key.sign_recoverable(digest, hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


@dataclass(frozen=True)
class StageToken:
    """The coordinator's permission for ``sender`` to feed ``receiver`` at cut ``stage`` of ``job``'s ``task``."""

    job: int
    task: int
    stage: int
    sender: str
    receiver: str
    expiry: int
    signature: bytes = b""

    def digest(self, domain: RequestDomain) -> bytes:
        separator = domain_separator(DOMAIN_NAME, DOMAIN_VERSION, domain.chain_id, domain.contract)
        return typed_digest(
            separator,
            keccak(
                _TYPEHASH
                + self.job.to_bytes(32, "big")
                + self.task.to_bytes(32, "big")
                + self.stage.to_bytes(32, "big")
                + bytes.fromhex(self.sender[2:]).rjust(32, b"\0")
                + bytes.fromhex(self.receiver[2:]).rjust(32, b"\0")
                + self.expiry.to_bytes(32, "big")
            ),
        )

    @classmethod
    def issue(
        cls,
        domain: RequestDomain,
        coordinator_key: bytes,
        *,
        job: int,
        task: int,
        stage: int,
        sender: str,
        receiver: str,
        lifetime: int = 3600,
    ) -> StageToken:
        unsigned = cls(
            job,
            task,
            stage,
            to_checksum_address(sender),
            to_checksum_address(receiver),
            int(time.time()) + lifetime,
        )
        signature = _sign(PrivateKey(coordinator_key), unsigned.digest(domain))
        return cls(job, task, stage, unsigned.sender, unsigned.receiver, unsigned.expiry, signature)

    def to_bytes(self) -> bytes:
        return _TOKEN.pack(
            self.job.to_bytes(32, "big"),
            self.task.to_bytes(32, "big"),
            self.stage.to_bytes(32, "big"),
            bytes.fromhex(self.sender[2:]),
            bytes.fromhex(self.receiver[2:]),
            self.expiry.to_bytes(8, "big"),
            self.signature,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> StageToken:
        if len(data) != _TOKEN.size:
            raise ChannelError(f"stage token has {len(data)} bytes, expected {_TOKEN.size}")
        job, task, stage, sender, receiver, expiry, signature = _TOKEN.unpack(data)
        return cls(
            int.from_bytes(job, "big"),
            int.from_bytes(task, "big"),
            int.from_bytes(stage, "big"),
            to_checksum_address("0x" + sender.hex()),
            to_checksum_address("0x" + receiver.hex()),
            int.from_bytes(expiry, "big"),
            signature,
        )


def _receive_into(sock: socket.socket, buffer: memoryview) -> None:
    got = 0
    while got < len(buffer):
        n = sock.recv_into(buffer[got:])
        if not n:
            raise ChannelError(
                f"stage peer closed the connection {len(buffer) - got} bytes short of a frame"
            )
        got += n


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buffer = bytearray(n)
    _receive_into(sock, memoryview(buffer))
    return bytes(buffer)


def low_latency(sock: socket.socket) -> None:
    """Send every frame at once: without this, Nagle's algorithm can hold a frame's tail back."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _bytes_of(array: np.ndarray) -> memoryview:
    """The array's memory as flat bytes, without copying it."""
    return array.reshape(-1).view(np.uint8).data


def _send_all(sock: socket.socket, parts: list[memoryview]) -> None:
    # sendmsg may take only part of what it is given; continue from where it stopped.
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts[0])
            parts.pop(0)
        if parts and sent:
            parts[0] = parts[0][sent:]


def write_frame(sock: socket.socket, kind: Kind, step: int, tensor: Tensor) -> int:
    """Send one tensor; returns the bytes written (header and payload)."""
    code = _CODES.get(tensor.dtype)
    if code is None:
        raise ChannelError(f"the stage channel carries float32 and int64 tensors, not {tensor.dtype}")
    # A no-op for a contiguous tensor on a little-endian machine: the payload is its memory.
    array = np.ascontiguousarray(tensor.detach().numpy(), dtype=_DTYPES[code][1])
    payload = _bytes_of(array)
    head = _HEADER.pack(MAGIC, VERSION, int(kind), code, array.ndim, step, len(payload))
    head += struct.pack(f"<{array.ndim}I", *array.shape)
    _send_all(sock, [memoryview(head), payload])
    return len(head) + len(payload)


def read_frame(
    sock: socket.socket,
    *,
    kind: Kind,
    step: int,
    dtype: torch.dtype,
    shape: tuple[int, ...],
    limit: int = MAX_FRAME_BYTES,
) -> Tensor:
    """Receive the one frame expected next, checking every header field before the payload."""
    magic, version, got_kind, code, ndim, got_step, length = _HEADER.unpack(
        _read_exactly(sock, _HEADER.size)
    )
    if magic != MAGIC:
        raise ChannelError("not a stage frame (bad magic)")
    if version != VERSION:
        raise ChannelError(f"stage frame version {version}, this worker speaks {VERSION}")
    if got_kind != kind:
        raise ChannelError(f"expected a {kind.name.lower()} frame, got kind {got_kind}")
    if got_step != step:
        raise ChannelError(f"expected step {step}, got step {got_step}")
    if code not in _DTYPES or _DTYPES[code][0] != dtype:
        raise ChannelError(f"expected {dtype}, got dtype code {code}")
    if ndim > MAX_DIMS:
        raise ChannelError(f"frame has {ndim} dimensions, at most {MAX_DIMS}")
    dims = struct.unpack(f"<{ndim}I", _read_exactly(sock, 4 * ndim))
    if dims != shape:
        raise ChannelError(f"expected shape {shape}, got {dims}")
    item = _DTYPES[code][1]
    if length > limit:
        raise ChannelError(f"frame of {length} bytes exceeds the {limit}-byte limit")
    if length != item.itemsize * int(np.prod(dims, dtype=np.int64)):
        raise ChannelError(f"frame length {length} does not match shape {dims} of {dtype}")
    # Allocated only now that the header has passed every check, and filled in place.
    tensor = torch.empty(dims, dtype=dtype)
    array = tensor.numpy()
    _receive_into(sock, _bytes_of(array))
    if sys.byteorder != "little":
        array.byteswap(inplace=True)
    return tensor


def connect_stage(sock: socket.socket, domain: RequestDomain, token: StageToken, sender_key: bytes) -> None:
    """The sender's side of the handshake: answer the receiver's challenge with the token."""
    challenge = _read_exactly(sock, 32)
    proof = _sign(PrivateKey(sender_key), keccak(token.digest(domain) + challenge))
    sock.sendall(token.to_bytes() + proof)


def accept_stage(
    sock: socket.socket,
    domain: RequestDomain,
    *,
    coordinator: str,
    job: int,
    task: int,
    stage: int,
    receiver: str,
    spent: set[bytes],
    now: float | None = None,
) -> StageToken:
    """The receiver's side: challenge, then check the token and the sender's proof."""
    challenge = os.urandom(32)
    sock.sendall(challenge)
    hello = _read_exactly(sock, _HELLO_BYTES)
    token = StageToken.from_bytes(hello[: _TOKEN.size])
    proof = hello[_TOKEN.size :]
    digest = token.digest(domain)
    if recover_signer(digest, token.signature) != to_checksum_address(coordinator):
        raise ChannelError("stage token is not signed by this job's coordinator")
    if (token.job, token.task, token.stage) != (job, task, stage):
        raise ChannelError(f"stage token is for job {token.job} task {token.task} stage {token.stage}")
    if token.receiver != to_checksum_address(receiver):
        raise ChannelError("stage token names another receiving worker")
    if token.expiry < (time.time() if now is None else now):
        raise ChannelError("stage token expired")
    if recover_signer(keccak(digest + challenge), proof) != token.sender:
        raise ChannelError("stage peer does not hold the key the token names")
    fingerprint = hashlib.sha256(digest).digest()
    if fingerprint in spent:
        raise ChannelError("stage token already used")
    spent.add(fingerprint)
    return token
