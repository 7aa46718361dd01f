"""Encoded items that live on disk and are read a slice or a minibatch at a time.

A dataset of 1.28 million 32x32x3 images is 15.7 GB as float32: it cannot be
held in memory, and a memory map does not help either, because every page a
scan touches stays resident (and counts in the process's memory) until the
kernel needs it back. :class:`DiskRows` reads a float32 ``.npy`` file with plain
positioned reads instead, so only the rows asked for are in memory, and
:class:`Stack` joins several such blocks (one per accepted proposal) into one
row space without copying them. A gathered minibatch holds exactly the values
the same rows of an in-memory array hold, so training reads the same bits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import InputError

__all__ = ["DiskRows", "RowBlock", "Stack", "as_stack"]

#: Rows closer than this (in bytes of file between them) are read in one call.
_COALESCE_BYTES = 1 << 16


class DiskRows:
    """The rows of a C-ordered float32 ``.npy`` file, read on demand.

    Indexing with an int, a slice (step 1) or an integer array returns a new
    in-memory float32 array, as indexing an array would; ``np.asarray`` reads
    everything (meant for small files: a validation split, one proposal).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            except ValueError as exc:
                raise InputError(f"{self.path.name}: not an encodings file ({exc})") from None
            self._offset = f.tell()
        if fortran or dtype != np.dtype("<f4") or len(shape) < 1:
            raise InputError(f"{self.path.name}: encodings must be C-ordered float32 rows, got {dtype} {shape}")
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        self.dtype = np.dtype(np.float32)
        self._row_bytes = 4 * int(np.prod(self.shape[1:], dtype=np.int64))
        if os.path.getsize(self.path) < self._offset + self._row_bytes * self.shape[0]:
            raise InputError(f"{self.path.name}: encodings file is truncated")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @contextmanager
    def _opened(self) -> Iterator[int]:
        # Opened per read, not held: an evaluator keeps one per accepted
        # proposal, and thousands of them must not use up the descriptors.
        fd = os.open(self.path, os.O_RDONLY)
        try:
            yield fd
        finally:
            os.close(fd)

    def _read_into(self, fd: int, out: NDArray[np.float32], first: int) -> None:
        view = out.reshape(-1).view(np.uint8).data
        position = self._offset + first * self._row_bytes
        while len(view):
            if hasattr(os, "preadv"):
                done = os.preadv(fd, [view], position)
            else:  # pragma: no cover - platforms without preadv (the descriptor is this call's own)
                os.lseek(fd, position, os.SEEK_SET)
                done = os.readv(fd, [view])
            if done <= 0:
                raise InputError(f"{self.path.name}: encodings file ended early")
            view, position = view[done:], position + done

    def _slice(self, start: int, stop: int) -> NDArray[np.float32]:
        out = np.empty((max(0, stop - start), *self.shape[1:]), dtype=np.float32)
        if len(out):
            with self._opened() as fd:
                self._read_into(fd, out, start)
        return out

    def take(self, index: NDArray[np.integer]) -> NDArray[np.float32]:
        """The rows at ``index`` (1-D, any order, repeats allowed), in that order."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError("row index out of range")
        unique, where = np.unique(index, return_inverse=True)
        picked = np.empty((len(unique), *self.shape[1:]), dtype=np.float32)
        # Runs of nearby rows are read in one call (the gaps read and dropped).
        gap = max(1, _COALESCE_BYTES // max(1, self._row_bytes))
        breaks = np.flatnonzero(np.diff(unique) > gap) + 1
        with self._opened() as fd:
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(unique)], strict=True):
                first, last = int(unique[lo]), int(unique[hi - 1])
                if hi - lo == last - first + 1:
                    self._read_into(fd, picked[lo:hi], first)
                else:
                    run = np.empty((last - first + 1, *self.shape[1:]), dtype=np.float32)
                    self._read_into(fd, run, first)
                    picked[lo:hi] = run[unique[lo:hi] - first]
        return picked[where.reshape(-1)]

    def __getitem__(self, key: Any) -> NDArray[np.float32]:
        if isinstance(key, int | np.integer):
            row = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= row < len(self):
                raise IndexError("row index out of range")
            one: NDArray[np.float32] = self._slice(row, row + 1)[0]
            return one
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("encodings on disk are sliced with step 1")
            return self._slice(start, stop)
        return self.take(np.asarray(key))

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        whole = self._slice(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)


RowBlock = NDArray[np.float32] | DiskRows


class Stack:
    """Blocks of rows (arrays or :class:`DiskRows`) seen as one, in order, uncopied."""

    def __init__(self, blocks: Sequence[RowBlock]) -> None:
        if not blocks:
            raise InputError("no rows to stack")
        tails = {tuple(b.shape[1:]) for b in blocks}
        if len(tails) != 1:
            raise InputError(f"blocks of different row shapes cannot be stacked: {sorted(tails)}")
        self.blocks = list(blocks)
        self._starts = np.cumsum([0, *(len(b) for b in self.blocks)])
        self.shape: tuple[int, ...] = (int(self._starts[-1]), *tails.pop())

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, index: NDArray[np.integer]) -> NDArray[np.float32]:
        """The rows at global ``index`` (1-D), in that order, as float32."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.empty((len(index), *self.shape[1:]), dtype=np.float32)
        owner = np.searchsorted(self._starts, index, side="right") - 1
        for b in np.unique(owner):
            mine = owner == b
            block, local = self.blocks[int(b)], index[mine] - self._starts[b]
            out[mine] = block.take(local) if isinstance(block, DiskRows) else np.take(block, local, axis=0)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        whole = np.concatenate([np.asarray(b, dtype=np.float32) for b in self.blocks])
        return whole if dtype is None else whole.astype(dtype, copy=False)


def as_stack(x: NDArray[np.floating] | RowBlock | Stack) -> Stack:
    """``x`` as a :class:`Stack` (an in-memory array becomes one float32 block)."""
    if isinstance(x, Stack):
        return x
    if isinstance(x, DiskRows):
        return Stack([x])
    return Stack([np.ascontiguousarray(x, dtype=np.float32)])
