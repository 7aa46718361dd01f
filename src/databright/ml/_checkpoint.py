"""Checkpoints as safetensors bytes, with a stable digest.

Checkpoints cross trust boundaries (workers return them, models are registered by
their digest, anyone may download one), so they are stored as safetensors — a
JSON header plus raw little-endian tensor data — and never pickled. The bytes are
a function of the tensors alone: safetensors writes the header keys and data in
sorted order whatever the dict's order, and no free-form metadata is added, so
:func:`checkpoint_digest` is the same for equal states on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

from databright.errors import InputError

__all__ = ["checkpoint_digest", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(state: Mapping[str, Tensor]) -> bytes:
    """Serialise a state dict to safetensors bytes (deterministic for equal tensors)."""
    tensors: dict[str, Tensor] = {}
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, Tensor):
            raise InputError(f"a checkpoint maps names to tensors; {name!r} does not")
        # Copies, so tensors sharing storage (tied weights, views) serialise independently.
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    return save(dict(sorted(tensors.items())))


def load_checkpoint(data: bytes) -> dict[str, Tensor]:
    """Parse safetensors bytes; anything malformed raises :class:`InputError`."""
    try:
        state = load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InputError(f"not a valid safetensors checkpoint ({exc})") from None
    return {name: state[name] for name in sorted(state)}


def checkpoint_digest(state: Mapping[str, Tensor]) -> str:
    """SHA-256 (hex) of :func:`save_checkpoint`'s bytes."""
    return hashlib.sha256(save_checkpoint(state)).hexdigest()

