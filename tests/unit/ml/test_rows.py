"""Encodings on disk: read a slice or a minibatch at a time, the same bits as in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from databright.errors import InputError
from databright.ml import DiskRows, ModelSpec, Stack, accuracy, train


def _saved(path: Path, x: np.ndarray) -> DiskRows:
    np.save(path, x)
    return DiskRows(path)


def test_disk_rows_read_what_the_file_holds(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(500, 3, 4, 4)).astype(np.float32)
    rows = _saved(tmp_path / "x.npy", x)
    assert rows.shape == x.shape and len(rows) == 500
    np.testing.assert_array_equal(rows[7], x[7])
    np.testing.assert_array_equal(rows[-1], x[-1])
    np.testing.assert_array_equal(rows[40:73], x[40:73])
    np.testing.assert_array_equal(rows[490:900], x[490:])
    index = np.array([499, 3, 3, 250, 0, 251, 120, 5])  # any order, repeats, near and far rows
    np.testing.assert_array_equal(rows.take(index), x[index])
    np.testing.assert_array_equal(rows[index], x[index])
    np.testing.assert_array_equal(np.asarray(rows), x)
    with pytest.raises(IndexError):
        rows.take(np.array([500]))


def test_disk_rows_refuse_what_is_not_float32_rows(tmp_path: Path) -> None:
    np.save(tmp_path / "f64.npy", np.zeros((3, 2)))
    with pytest.raises(InputError, match="float32"):
        DiskRows(tmp_path / "f64.npy")
    np.save(tmp_path / "short.npy", np.zeros((30, 2), dtype=np.float32))
    data = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-9])
    with pytest.raises(InputError, match="truncated"):
        DiskRows(tmp_path / "short.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(InputError, match="not an encodings file"):
        DiskRows(tmp_path / "junk.npy")


def test_stack_takes_rows_across_blocks_in_order(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(300, 6)).astype(np.float32)
    stack = Stack([_saved(tmp_path / "a.npy", x[:100]), x[100:180], _saved(tmp_path / "c.npy", x[180:])])
    assert stack.shape == (300, 6)
    index = np.array([299, 0, 150, 99, 100, 179, 180, 42, 42])
    np.testing.assert_array_equal(stack.take(index), x[index])
    np.testing.assert_array_equal(np.asarray(stack), x)
    with pytest.raises(InputError, match="different row shapes"):
        Stack([x, x[:, :3]])


def test_training_from_disk_is_the_same_bits_as_in_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(900, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 900)
    spec = ModelSpec(kind="cnn", input="image", image_shape=(1, 8, 8), hidden=(4, 4), classes=("a", "b", "c"),
                     batch_size=32, pretrain_steps=40, finetune_steps=20)
    extra = (rng.normal(size=(50, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 50))
    in_memory = train(spec, None, x, y, steps=40, seed=3, extra=extra)
    stack = Stack([_saved(tmp_path / "a.npy", x[:400]), _saved(tmp_path / "b.npy", x[400:])])
    on_disk = train(spec, None, stack, y, steps=40, seed=3, extra=extra)
    assert on_disk.keys() == in_memory.keys()
    for name in in_memory:
        assert torch.equal(on_disk[name], in_memory[name]), name
    validation = DiskRows(tmp_path / "a.npy")
    assert accuracy(spec, on_disk, validation, y[:400]) == accuracy(spec, in_memory, x[:400], y[:400])
    with pytest.raises(InputError, match="expected"):
        train(spec, None, Stack([x.reshape(900, -1)]), y, steps=1, seed=0)


def test_disk_rows_hold_no_descriptor_between_reads(tmp_path: Path) -> None:
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    before = len(list(Path("/proc/self/fd").iterdir())) if Path("/proc/self/fd").is_dir() else None
    many = [_saved(tmp_path / f"{i}.npy", x) for i in range(50)]  # an evaluator holds one per accepted proposal
    for rows in many:
        np.testing.assert_array_equal(rows.take(np.array([9, 1])), x[[9, 1]])
    if before is not None:
        assert len(list(Path("/proc/self/fd").iterdir())) <= before + 1
