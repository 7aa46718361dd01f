"""Commitments to a training run: a Merkle tree of its states every k steps, signed by the worker.

In optimistic mode one worker trains a task alone and commits, every
``interval`` steps (and at the end), to the SHA-256 of its full training
snapshot (:class:`~databright.ml._resumable.Training`: weights, optimizer
buffers, RNG and batch position) as a leaf of a Merkle tree. It signs the root
with its Ethereum key as EIP-712 typed data under the compute domain, bound to
the task's digest and the result's digest, before it can know which segments
the coordinator will re-execute; it keeps the snapshots and serves any of them,
as safetensors with a Merkle proof, on request. Leaves and inner nodes are
hashed with distinct prefixes (0x00, 0x01), so no inner node passes as a leaf,
and an odd node is carried up unpaired rather than duplicated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from coincurve import PrivateKey
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from numpy.typing import NDArray
from torch import Tensor

from databright.chain import domain_separator, recover_signer, typed_digest
from databright.compute._requests import DOMAIN_NAME, DOMAIN_VERSION, RequestDomain
from databright.errors import InputError
from databright.ml import ModelSpec, save_checkpoint
from databright.ml._resumable import Training

__all__ = ["Commitment", "CommittedRun", "MerkleTree", "Proof", "boundaries", "commit_training", "verify_proof"]

TRAINING_COMMITMENT = ("TrainingCommitment(bytes32 task,bytes32 root,uint256 leaves,uint256 interval,"
                       "uint256 steps,bytes32 result)")
_TYPEHASH = keccak(TRAINING_COMMITMENT.encode())

#: A proof: for each level, the sibling's hash and whether it sits on the left (None: carried up unpaired).
Proof = tuple[tuple[bytes, bool] | None, ...]


def _leaf(digest: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + digest).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """A binary Merkle tree over leaf digests (32 bytes each)."""

    def __init__(self, digests: list[bytes]) -> None:
        if not digests:
            raise InputError("a Merkle tree needs at least one leaf")
        self.levels = [[_leaf(d) for d in digests]]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            above = [_node(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            self.levels.append(above)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> Proof:
        if not 0 <= index < len(self.levels[0]):
            raise InputError(f"no leaf {index} in a tree of {len(self.levels[0])}")
        path: list[tuple[bytes, bool] | None] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            path.append((level[sibling], sibling < index) if sibling < len(level) else None)
            index //= 2
        return tuple(path)


def verify_proof(root: bytes, index: int, leaves: int, digest: bytes, proof: Proof) -> bool:
    """Whether ``digest`` is leaf ``index`` of the ``leaves``-leaf tree with ``root``."""
    if not 0 <= index < leaves:
        return False
    node, width = _leaf(digest), leaves
    for step in proof:
        if width <= 1:
            return False
        unpaired = index == width - 1 and width % 2 == 1
        if step is None:
            if not unpaired:
                return False
        else:
            sibling, left = step
            if unpaired or left != (index % 2 == 1) or len(sibling) != 32:
                return False
            node = _node(sibling, node) if left else _node(node, sibling)
        index, width = index // 2, (width + 1) // 2
    return width == 1 and node == root


def boundaries(steps: int, interval: int) -> list[int]:
    """The step counts at which a run of ``steps`` commits: 0, k, 2k, …, steps."""
    if interval < 1:
        raise InputError(f"commitment interval must be at least 1 step, got {interval}")
    return sorted({*range(0, steps, interval), steps})


@dataclass(frozen=True)
class Commitment:
    """A worker's signed claim: its run of ``task`` passed through the states under ``root``."""

    task: bytes
    root: bytes
    leaves: int
    interval: int
    steps: int
    result: bytes
    signature: bytes

    def digest(self, domain: RequestDomain) -> bytes:
        struct = keccak(_TYPEHASH + self.task + self.root + self.leaves.to_bytes(32, "big")
                        + self.interval.to_bytes(32, "big") + self.steps.to_bytes(32, "big") + self.result)
        return typed_digest(domain_separator(DOMAIN_NAME, DOMAIN_VERSION, domain.chain_id, domain.contract), struct)

    def signer(self, domain: RequestDomain) -> str | None:
        return recover_signer(self.digest(domain), self.signature)

    def evidence(self) -> dict[str, object]:
        return {"type": TRAINING_COMMITMENT, "task": "0x" + self.task.hex(), "root": "0x" + self.root.hex(),
                "leaves": self.leaves, "interval": self.interval, "steps": self.steps,
                "result": "0x" + self.result.hex(), "signature": "0x" + self.signature.hex()}


def sign_commitment(domain: RequestDomain, key: bytes, task: bytes, tree: MerkleTree, interval: int, steps: int,
                    result: bytes) -> Commitment:
    unsigned = Commitment(task, tree.root, len(tree.levels[0]), interval, steps, result, b"")
    raw = PrivateKey(key).sign_recoverable(unsigned.digest(domain), hasher=None)
    return Commitment(task, tree.root, unsigned.leaves, interval, steps, result, raw[:64] + bytes([raw[64] + 27]))


def address_of(key: bytes) -> str:
    return to_checksum_address(keccak(PrivateKey(key).public_key.format(compressed=False)[1:])[-20:])


@dataclass
class CommittedRun:
    """A worker's side of an optimistic task: the result, the signed root, and the snapshots it serves."""

    weights: dict[str, Tensor]
    snapshots: list[bytes]
    tree: MerkleTree
    commitment: Commitment

    def serve(self, index: int) -> tuple[bytes, Proof]:
        """Snapshot ``index`` as safetensors, with its Merkle proof."""
        return self.snapshots[index], self.tree.proof(index)


def commit_training(spec: ModelSpec, state: dict[str, Tensor] | None, x: NDArray[np.floating],
                    y: NDArray[np.integer], *, steps: int, seed: int, interval: int, task: bytes,
                    domain: RequestDomain, key: bytes) -> CommittedRun:
    """Train honestly, snapshotting every ``interval`` steps, and sign the Merkle root of the snapshots."""
    run = Training(spec, state, x, y, seed=seed)
    snapshots, done = [], 0
    for point in boundaries(steps, interval):
        run.run(point - done)
        done = point
        snapshots.append(save_checkpoint(run.snapshot()))
    tree = MerkleTree([hashlib.sha256(s).digest() for s in snapshots])
    weights = run.weights()
    result = hashlib.sha256(save_checkpoint(weights)).digest()
    return CommittedRun(weights, snapshots, tree, sign_commitment(domain, key, task, tree, interval, steps, result))
