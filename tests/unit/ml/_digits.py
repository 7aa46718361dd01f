"""scikit-learn's 8x8 digits (shipped with sklearn, no network) as a table dataset."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits

from databright.ml import ModelSpec, default_spec, encode_items, encode_labels
from databright.storage import canonical_json


class Digits(NamedTuple):
    spec: ModelSpec
    x: NDArray[np.float32]
    y: NDArray[np.int64]


def digits_table() -> Digits:
    """All 1797 digits, encoded with the default spec chosen from the first 800."""
    data = load_digits()
    items = [
        canonical_json({f"p{i:02d}": float(v) for i, v in enumerate(row)}) for row in data.data
    ]
    labels = [str(t) for t in data.target]
    spec = default_spec("table", items[:800], labels[:800])
    return Digits(spec, encode_items(spec, items), encode_labels(spec, labels))
