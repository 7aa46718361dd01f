"""Model specs, deterministic training and safetensors checkpoints.

A :class:`ModelSpec` (JSON data, no code) says how dataset items become tensors
and which small classifier to train on them; :func:`train` is a pure function of
spec, starting state, data, step count and seed, bit-identical across runs in one
:func:`environment`; checkpoints travel as safetensors bytes named by
:func:`checkpoint_digest`. See DESIGN.md ("ml", "Rewards with diminishing returns").

Typical use by an evaluator::

    spec = default_spec("table", sample_items, sample_labels)
    x, y = encode_items(spec, items), encode_labels(spec, labels)
    state = train(spec, None, x, y, steps=spec.pretrain_steps, seed=0)
    blob = save_checkpoint(state)            # store.put(blob) -> checkpoint CID
    tuned = train(spec, load_checkpoint(blob), x2, y2, steps=spec.finetune_steps, seed=1)
    gain = accuracy(spec, tuned, x_val, y_val) - accuracy(spec, state, x_val, y_val)
"""

from __future__ import annotations

from databright.ml._checkpoint import checkpoint_digest, load_checkpoint, save_checkpoint
from databright.ml._data import default_spec, encode_items, encode_labels
from databright.ml._rows import DiskRows, RowBlock, Stack, as_stack
from databright.ml._spec import ModelSpec, Normalization
from databright.ml._train import (
    Seed,
    accuracy,
    build_model,
    environment,
    predict_proba,
    single_thread,
    train,
)

__all__ = [
    "DiskRows",
    "ModelSpec",
    "Normalization",
    "RowBlock",
    "Seed",
    "Stack",
    "accuracy",
    "as_stack",
    "build_model",
    "checkpoint_digest",
    "default_spec",
    "encode_items",
    "encode_labels",
    "environment",
    "load_checkpoint",
    "predict_proba",
    "save_checkpoint",
    "single_thread",
    "train",
]
