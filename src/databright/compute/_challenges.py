"""What crosses the wire in an optimistic task: commitments, challenges and their answers.

A worker in an optimistic task posts its signed :class:`Commitment` as JSON
(the same fields as its evidence form), then its result; the coordinator then
names the snapshots it wants (challenges) and the worker, which opens no port,
polls for them and answers each with one signed request whose body is::

    uint32 big-endian length of the proof JSON || proof JSON || snapshot safetensors

The proof JSON is a list with one entry per tree level: ``null`` (the node was
carried up unpaired) or ``["0x<sibling>", left]``. Everything parsed here is
checked for type and size and refused with :class:`InputError` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from databright.compute._commitments import Commitment, Proof
from databright.compute._task import Task
from databright.compute._verification import samples_for
from databright.errors import InputError
from databright.storage import canonical_json

__all__ = [
    "MAX_SEGMENTS",
    "commitment_from_json",
    "commitment_to_json",
    "default_interval",
    "default_samples",
    "pack_answer",
    "task_digest",
    "unpack_answer",
]

#: The default commitment interval gives a task at most this many segments (and one per step below it).
MAX_SEGMENTS = 32
#: The proof of a leaf in a tree of 2**64 leaves is far below this; anything longer is not a proof.
_MAX_PROOF_JSON = 16_384


def default_interval(steps: int) -> int:
    """Steps per segment when a job leaves it to the coordinator: as few as keep ``MAX_SEGMENTS`` segments."""
    return max(1, math.ceil(steps / MAX_SEGMENTS))


def default_samples(segments: int) -> int:
    """Segments re-executed per task by default: a worker faking 10% of them is caught with 99% probability."""
    return samples_for(segments, 0.10, 0.99)


def task_digest(task: Task) -> bytes:
    """What a commitment's ``task`` field binds to: the SHA-256 of the task exactly as it was leased."""
    return hashlib.sha256(task.to_json()).digest()


def commitment_to_json(commitment: Commitment) -> bytes:
    return canonical_json(commitment.evidence())


def _bytes32(raw: dict[str, Any], name: str, size: int = 32) -> bytes:
    value = raw.get(name)
    try:
        if not isinstance(value, str) or not value.startswith("0x"):
            raise ValueError
        out = bytes.fromhex(value[2:])
    except ValueError:
        raise InputError(f"commitment: {name} is not 0x-prefixed hex") from None
    if len(out) != size:
        raise InputError(f"commitment: {name} is not {size} bytes")
    return out


def commitment_from_json(data: bytes) -> Commitment:
    """A commitment as a worker posts it; anything malformed raises :class:`InputError`."""
    if len(data) > 4096:
        raise InputError("commitment: more than 4096 bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InputError("commitment is not JSON") from None
    if not isinstance(raw, dict):
        raise InputError("commitment is not a JSON object")
    numbers = [raw.get(k) for k in ("leaves", "interval", "steps")]
    if any(type(n) is not int or not 0 <= n < 2**64 for n in numbers):
        raise InputError("commitment: leaves, interval and steps are non-negative integers")
    leaves, interval, steps = (int(n) for n in numbers)  # type: ignore[arg-type]
    return Commitment(_bytes32(raw, "task"), _bytes32(raw, "root"), leaves, interval, steps,
                      _bytes32(raw, "result"), _bytes32(raw, "signature", 65))


def proof_to_json(proof: Proof) -> list[Any]:
    return [None if step is None else ["0x" + step[0].hex(), step[1]] for step in proof]


def proof_from_json(raw: Any) -> Proof:
    if not isinstance(raw, list) or len(raw) > 64:
        raise InputError("a Merkle proof is a list of at most 64 levels")
    out: list[tuple[bytes, bool] | None] = []
    for step in raw:
        if step is None:
            out.append(None)
            continue
        if (not isinstance(step, list) or len(step) != 2 or not isinstance(step[0], str)
                or not isinstance(step[1], bool)):
            raise InputError("a Merkle proof level is null or [\"0x<sibling>\", left]")
        try:
            sibling = bytes.fromhex(step[0].removeprefix("0x"))
        except ValueError:
            raise InputError("a Merkle proof sibling is not hex") from None
        if len(sibling) != 32:
            raise InputError("a Merkle proof sibling is not 32 bytes")
        out.append((sibling, step[1]))
    return tuple(out)


def pack_answer(snapshot: bytes, proof: Proof) -> bytes:
    """An answer's body, from what :meth:`CommittedRun.serve` returns."""
    head = canonical_json(proof_to_json(proof))
    return len(head).to_bytes(4, "big") + head + snapshot


def unpack_answer(body: bytes, max_snapshot: int) -> tuple[Proof, bytes]:
    """The proof and snapshot of an answer, refused if malformed or if the snapshot exceeds ``max_snapshot``."""
    if len(body) < 4:
        raise InputError("an answer is a 4-byte proof length, the proof JSON and the snapshot")
    size = int.from_bytes(body[:4], "big")
    if size > _MAX_PROOF_JSON or 4 + size > len(body):
        raise InputError("an answer's proof length does not fit the body")
    snapshot = body[4 + size:]
    if len(snapshot) > max_snapshot:
        raise InputError(f"snapshot of {len(snapshot)} bytes exceeds the {max_snapshot}-byte limit of this task")
    try:
        raw = json.loads(body[4:4 + size])
    except (ValueError, UnicodeDecodeError):
        raise InputError("an answer's proof is not JSON") from None
    return proof_from_json(raw), snapshot
