"""The stage channel refuses malformed, truncated, oversized and mistyped frames and foreign or replayed tokens."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
import torch
from coincurve import PrivateKey
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from databright.compute._stage_channel import (
    ChannelError,
    Kind,
    StageToken,
    accept_stage,
    connect_stage,
    low_latency,
    read_frame,
    write_frame,
)
from tests.unit.compute.conftest import DOMAIN

COORDINATOR, SENDER, RECEIVER, STRANGER = (bytes([n]) * 32 for n in (1, 2, 3, 4))


def _address(key: bytes) -> str:
    return to_checksum_address(keccak(PrivateKey(key).public_key.format(compressed=False)[1:])[-20:])


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    # A real TCP connection on loopback, as between two stage workers.
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    client.settimeout(10)
    peer.settimeout(10)
    yield client, peer
    client.close()
    peer.close()


def _token(signer: bytes = COORDINATOR, job: int = 7, receiver: bytes = RECEIVER, lifetime: int = 60,
           task: int = 3) -> StageToken:
    return StageToken.issue(DOMAIN, signer, job=job, task=task, stage=0, sender=_address(SENDER),
                            receiver=_address(receiver), lifetime=lifetime)


def _handshake(pair: tuple[socket.socket, socket.socket], token: StageToken, key: bytes = SENDER,
               spent: set[bytes] | None = None) -> StageToken:
    client, peer = pair
    thread = threading.Thread(target=connect_stage, args=(client, DOMAIN, token, key))
    thread.start()
    try:
        return accept_stage(peer, DOMAIN, coordinator=_address(COORDINATOR), job=7, task=3, stage=0,
                            receiver=_address(RECEIVER), spent=set() if spent is None else spent)
    finally:
        thread.join(10)


def test_a_tensor_crosses_bit_exact(pair: tuple[socket.socket, socket.socket]) -> None:
    client, peer = pair
    assert _handshake(pair, _token()).job == 7
    activation = torch.randn(4, 8, 2, 2, generator=torch.Generator().manual_seed(0))
    sent = write_frame(client, Kind.ACTIVATION, 3, activation)
    assert sent == 24 + 4 * 4 + activation.numel() * 4
    got = read_frame(peer, kind=Kind.ACTIVATION, step=3, dtype=torch.float32, shape=(4, 8, 2, 2))
    assert torch.equal(got, activation)
    labels = torch.tensor([0, 2, 1, 1])
    write_frame(client, Kind.LABELS, 3, labels)
    assert torch.equal(read_frame(peer, kind=Kind.LABELS, step=3, dtype=torch.int64, shape=(4,)), labels)


def test_a_frame_larger_than_the_socket_buffers_crosses_bit_exact(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # Small kernel buffers make sendmsg take a frame piece by piece and recv_into return it so.
    client, peer = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 14)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 14)
    big = torch.randn(64, 128, 128, generator=torch.Generator().manual_seed(1))  # 4 MiB
    # A transposed view is not contiguous: it is laid out as the shape says before it goes.
    labels = torch.arange(2048, dtype=torch.int64).reshape(32, 64).t()
    sender = threading.Thread(
        target=lambda: (write_frame(client, Kind.ACTIVATION, 0, big), write_frame(client, Kind.LABELS, 0, labels))
    )
    sender.start()
    got = read_frame(peer, kind=Kind.ACTIVATION, step=0, dtype=torch.float32, shape=(64, 128, 128))
    got_labels = read_frame(peer, kind=Kind.LABELS, step=0, dtype=torch.int64, shape=(64, 32))
    sender.join(10)
    assert torch.equal(got, big) and torch.equal(got_labels, labels)


def test_a_frame_trickling_in_byte_by_byte_is_read_whole(pair: tuple[socket.socket, socket.socket]) -> None:
    client, peer = pair
    low_latency(client)
    tensor = torch.tensor([1.5, -2.0, 3.25, 0.0])
    raw = _header() + struct.pack("<I", 4) + tensor.numpy().astype("<f4").tobytes()

    def trickle() -> None:
        for i in range(len(raw)):
            client.sendall(raw[i : i + 1])

    sender = threading.Thread(target=trickle)
    sender.start()
    got = read_frame(peer, kind=Kind.ACTIVATION, step=0, dtype=torch.float32, shape=(4,))
    sender.join(10)
    assert torch.equal(got, tensor)


def test_each_frame_arrives_in_memory_of_its_own(pair: tuple[socket.socket, socket.socket]) -> None:
    # A stage keeps a step's input for its backward pass: the next frame must not overwrite it.
    client, peer = pair
    first, second = torch.ones(256), torch.full((256,), 2.0)
    write_frame(client, Kind.ACTIVATION, 0, first)
    write_frame(client, Kind.ACTIVATION, 1, second)
    got_first = read_frame(peer, kind=Kind.ACTIVATION, step=0, dtype=torch.float32, shape=(256,))
    got_second = read_frame(peer, kind=Kind.ACTIVATION, step=1, dtype=torch.float32, shape=(256,))
    assert torch.equal(got_first, first) and torch.equal(got_second, second)
    got_second.add_(1)
    assert torch.equal(got_first, first)


def test_low_latency_turns_nagle_off_on_tcp_only(pair: tuple[socket.socket, socket.socket]) -> None:
    client, _ = pair
    assert not client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    low_latency(client)
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    local, remote = socket.socketpair()
    with local, remote:
        low_latency(local)  # a Unix socket has no Nagle to turn off, and is left as it is
        write_frame(local, Kind.LABELS, 0, torch.tensor([3]))
        assert torch.equal(read_frame(remote, kind=Kind.LABELS, step=0, dtype=torch.int64, shape=(1,)),
                           torch.tensor([3]))


@pytest.mark.parametrize(
    ("token", "key", "message"),
    [
        (lambda: _token(signer=STRANGER), SENDER, "not signed by this job's coordinator"),
        (lambda: _token(job=8), SENDER, "for job 8"),
        (lambda: _token(task=4), SENDER, "task 4"),
        (lambda: _token(receiver=STRANGER), SENDER, "another receiving worker"),
        (lambda: _token(lifetime=-5), SENDER, "expired"),
        (lambda: _token(), STRANGER, "does not hold the key"),
    ],
)
def test_foreign_tokens_are_refused(pair: tuple[socket.socket, socket.socket], token: Callable[[], StageToken],
                                    key: bytes, message: str) -> None:
    with pytest.raises(ChannelError, match=message):
        _handshake(pair, token(), key)


def test_a_replayed_token_is_refused() -> None:
    spent: set[bytes] = set()
    token = _token()
    for attempt in range(2):
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            peer, _ = server.accept()
        with client, peer:
            if attempt == 0:
                _handshake((client, peer), token, spent=spent)
            else:
                with pytest.raises(ChannelError, match="already used"):
                    _handshake((client, peer), token, spent=spent)


def _header(kind: int = 2, code: int = 1, ndim: int = 1, step: int = 0, length: int = 16,
            magic: bytes = b"DBST", version: int = 1) -> bytes:
    return struct.pack("<4sBBBBQQ", magic, version, kind, code, ndim, step, length)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"GET / HTTP/1.1\r\n\r\n" + b"\0" * 8, "bad magic"),
        (_header(version=9), "version 9"),
        (_header(kind=3), "expected a activation frame"),
        (_header(step=1), "expected step 0"),
        (_header(code=2), "expected torch.float32"),
        (_header(code=99), "dtype code 99"),
        (_header(ndim=200), "200 dimensions"),
        (_header() + struct.pack("<I", 5), r"expected shape \(4,\), got \(5,\)"),
        (_header(length=2**40) + struct.pack("<I", 4), "exceeds"),
        (_header(length=12) + struct.pack("<I", 4), "does not match"),
        (_header() + struct.pack("<I", 4) + b"\0" * 7, "short of a frame"),
        (b"DBST\x01", "short of a frame"),
    ],
)
def test_bad_frames_are_refused(pair: tuple[socket.socket, socket.socket], raw: bytes, message: str) -> None:
    client, peer = pair
    client.sendall(raw)
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ChannelError, match=message):
        read_frame(peer, kind=Kind.ACTIVATION, step=0, dtype=torch.float32, shape=(4,))


def test_only_float32_and_int64_are_sent(pair: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(ChannelError, match="not torch.float64"):
        write_frame(pair[0], Kind.ACTIVATION, 0, torch.zeros(2, dtype=torch.float64))


def test_a_truncated_hello_is_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    client, peer = pair
    client.sendall(_token().to_bytes()[:50])
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ChannelError, match="short of a frame"):
        accept_stage(peer, DOMAIN, coordinator=_address(COORDINATOR), job=7, task=3, stage=0,
                     receiver=_address(RECEIVER), spent=set())
