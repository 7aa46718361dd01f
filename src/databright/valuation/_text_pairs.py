"""Duplicate signals for parallel text, which has no model spec (yet) to be valued by.

A translation dataset's proposal is judged by what it repeats: exact
duplicates (a pair whose CID, so whose bytes, is already accepted or earlier
in the batch) and near duplicates (a pair whose character shingles mostly
match an accepted pair's or an earlier one of the batch).

Near duplicates are found with MinHash and banded locality-sensitive hashing
(Broder, "On the resemblance and containment of documents", 1997; Leskovec,
Rajaraman and Ullman, *Mining of Massive Datasets*, ch. 3): a pair's shingles
are its case-folded, whitespace-collapsed source and target cut into
overlapping character 5-grams (marked by side, so a source never matches a
target), each hashed to ``x`` by CRC-32; :data:`PERMUTATIONS` hash functions
``(a x + b) mod (2^31 - 1)``,
with ``a`` and ``b`` derived from BLAKE2b so they are the same everywhere, keep
each one's minimum; two pairs whose signatures agree on all rows of one of
:data:`BANDS` bands are compared, and reported when the share of agreeing
values (an unbiased estimate of their Jaccard similarity, standard error at
most ``0.5 / sqrt(64) = 0.0625``) is at least :data:`NEAR_JACCARD`. A pair
at Jaccard 0.8 shares a band with probability ``1 - (1 - 0.8^4)^16 > 0.9999``.
The reported distance is ``1 - similarity``.

Cost is linear in the items: each accepted pair is hashed once per manifest
(signatures are cached by manifest CID) and looked up by band.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import InputError
from databright.storage import Manifest, ManifestError, decode_text
from databright.valuation._policy import RewardPolicy, value_ppm
from databright.valuation._signals import Signals

__all__ = ["NEAR_JACCARD", "PairSignatures", "pair_signals", "signature", "text_pair_results"]

SHINGLE = 5
PERMUTATIONS = 64
BANDS = 16
NEAR_JACCARD = 0.8
_PRIME = (1 << 31) - 1


def _coefficients() -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    def draw(name: str) -> int:
        return 1 + int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") % (_PRIME - 1)

    a = np.array([draw(f"databright-minhash-a-{i}") for i in range(PERMUTATIONS)], dtype=np.uint64)
    b = np.array([draw(f"databright-minhash-b-{i}") for i in range(PERMUTATIONS)], dtype=np.uint64)
    return a, b


_A, _B = _coefficients()


def _shingles(text: str, side: str) -> set[bytes]:
    norm = " ".join(text.casefold().split())
    if len(norm) <= SHINGLE:
        return {f"{side}{norm}".encode()}
    return {f"{side}{norm[i:i + SHINGLE]}".encode() for i in range(len(norm) - SHINGLE + 1)}


def signature(source: str, target: str | None) -> NDArray[np.uint64]:
    """The MinHash signature (``PERMUTATIONS`` values) of a text or pair."""
    shingles = _shingles(source, "s") | (_shingles(target, "t") if target is not None else set())
    # CRC-32 is a fixed function (unlike Python's salted hash) and ten times cheaper than BLAKE2b here.
    x = np.fromiter((zlib.crc32(s) for s in shingles), dtype=np.uint64, count=len(shingles)) % _PRIME
    # a, x < 2^31: a * x + b < 2^63, exact in uint64.
    return ((_A[:, None] * x[None, :] + _B[:, None]) % _PRIME).min(axis=1)  # type: ignore[no-any-return]


class PairSignatures:
    """Signatures of manifests' items, computed once per manifest CID."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._cache: dict[str, tuple[list[str], NDArray[np.uint64]]] = {}

    def load(self, manifest_cid: str) -> tuple[list[str], NDArray[np.uint64]]:
        if manifest_cid not in self._cache:
            manifest = Manifest.from_bytes(self.store.get(manifest_cid))
            cids = [str(item.cid) for item in manifest]
            sigs = np.empty((len(cids), PERMUTATIONS), dtype=np.uint64)
            for i, cid in enumerate(cids):
                try:
                    sigs[i] = signature(*decode_text(self.store.get(cid), f"item {cid}"))
                except ManifestError as exc:
                    raise InputError(str(exc)) from None
            self._cache[manifest_cid] = (cids, sigs)
        return self._cache[manifest_cid]


def _bands(sig: NDArray[np.uint64]) -> Iterable[tuple[int, bytes]]:
    rows = PERMUTATIONS // BANDS
    for band in range(BANDS):
        yield band, sig[band * rows:(band + 1) * rows].tobytes()


class _Buckets:
    def __init__(self) -> None:
        self._buckets: dict[tuple[int, bytes], list[int]] = {}

    def add(self, index: int, sig: NDArray[np.uint64]) -> None:
        for key in _bands(sig):
            self._buckets.setdefault(key, []).append(index)

    def nearest(self, sig: NDArray[np.uint64], sigs: NDArray[np.uint64]) -> tuple[int, float] | None:
        """The most similar indexed signature at or above NEAR_JACCARD (lowest index on ties)."""
        candidates = sorted({j for key in _bands(sig) for j in self._buckets.get(key, ())})
        if not candidates:
            return None
        similarity = (sigs[candidates] == sig[None, :]).mean(axis=1)
        best = int(np.argmax(similarity))
        value = float(similarity[best])
        return (candidates[best], value) if value >= NEAR_JACCARD else None


def pair_signals(
    accepted_cids: Sequence[str], accepted: NDArray[np.uint64], batch_cids: Sequence[str], batch: NDArray[np.uint64]
) -> dict[str, Any]:
    """Exact and near duplicates of a batch against the accepted items and within itself."""
    known = set(accepted_cids)
    index = _Buckets()
    for j, sig in enumerate(accepted):
        index.add(j, sig)
    exact: list[int] = []
    near: list[tuple[int, int, float]] = []
    within_exact: list[tuple[int, int]] = []
    within_near: list[tuple[int, int, float]] = []
    first: dict[str, int] = {}
    own = _Buckets()
    for i, (cid, sig) in enumerate(zip(batch_cids, batch, strict=True)):
        if cid in known:
            exact.append(i)
        elif cid in first:
            within_exact.append((i, first[cid]))
        else:
            found = index.nearest(sig, accepted)
            earlier = own.nearest(sig, batch)
            if found is not None:
                near.append((i, found[0], 1.0 - found[1]))
            elif earlier is not None:
                within_near.append((i, earlier[0], 1.0 - earlier[1]))
            own.add(i, sig)
            first[cid] = i
    repeats = set(exact) | {i for i, _ in within_exact} | {i for i, _, _ in near} | {i for i, _, _ in within_near}
    return {"exact": exact, "near": near, "within_exact": within_exact, "within_near": within_near,
            "novel": len(batch_cids) - len(repeats)}


def text_pair_results(store: Any, inputs: dict[str, Any], signatures: PairSignatures | None = None) -> dict[str, Any]:
    """The results of evaluating a parallel-text proposal: its duplicate signals and the
    shares the policy gives its novel pairs (those neither exact nor near duplicates)."""
    signatures = signatures or PairSignatures(store)
    accepted_cids: list[str] = []
    blocks = []
    for cid in inputs["accepted"]:
        cids, sigs = signatures.load(cid)
        accepted_cids += cids
        blocks.append(sigs)
    accepted = np.concatenate(blocks) if blocks else np.empty((0, PERMUTATIONS), dtype=np.uint64)
    batch_cids, batch = signatures.load(inputs["proposal"])
    found = pair_signals(accepted_cids, accepted, batch_cids, batch)
    policy = RewardPolicy.model_validate(inputs["policy"])
    signals = Signals((), 0.0, 0.0, 0, tuple(found["exact"]), tuple(found["near"]), (), 0,
                      near_threshold=1.0 - NEAR_JACCARD)
    return {
        "valued_by": "signals",
        "scores": [],
        "gain": {"mean": 0.0, "std": 0.0},
        "value_ppm": value_ppm(0.0),
        "shares": policy.shares(0.0, new_items=found["novel"], accepted_items=len(accepted_cids),
                                base_reward=int(inputs["base_reward"]), cap=int(inputs["cap"])),
        "signals": signals.to_json(),
        "text_signals": {
            "method": f"minhash, character {SHINGLE}-grams, {PERMUTATIONS} permutations, {BANDS} bands",
            "near_jaccard": NEAR_JACCARD,
            "within_exact_duplicates": [list(t) for t in found["within_exact"]],
            "within_near_duplicates": [list(t) for t in found["within_near"]],
            "novel_items": found["novel"],
        },
    }
