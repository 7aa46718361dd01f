"""Duplicate signals for parallel text: exact by CID, near by MinHash over character shingles."""

from __future__ import annotations

import numpy as np

from databright.storage import LocalBlobStore, Manifest, ManifestItem, cid_of, encode_pair
from databright.valuation import pair_signals, text_pair_results
from databright.valuation._text_pairs import NEAR_JACCARD, signature

ACCEPTED = [("The weather is nice today .", "Das Wetter ist heute schön ."),
            ("I would like a cup of coffee please .", "Ich hätte gern eine Tasse Kaffee , bitte ."),
            ("Where is the train station ?", "Wo ist der Bahnhof ?")]


def _sigs(pairs: list[tuple[str, str]]) -> np.ndarray:
    return np.stack([signature(s, t) for s, t in pairs])


def _cids(pairs: list[tuple[str, str]]) -> list[str]:
    return [str(cid_of(encode_pair(s, t, "x"))) for s, t in pairs]


def test_signatures_are_deterministic_and_estimate_similarity() -> None:
    a = signature(*ACCEPTED[1])
    assert a.dtype == np.uint64 and a.shape == (64,)
    assert a.tobytes() == signature(*ACCEPTED[1]).tobytes()
    # Case and spacing are normalised away; a one-word change stays similar; another sentence does not.
    assert np.array_equal(a, signature("i would  like a cup of COFFEE please .", ACCEPTED[1][1]))
    close = signature("I would like a cup of coffee please !", ACCEPTED[1][1])
    assert (a == close).mean() >= NEAR_JACCARD
    assert (a == signature(*ACCEPTED[2])).mean() < 0.2
    # The source and the target are different sides: swapping them is another pair.
    assert (signature("Hallo Welt", "Hello world") == signature("Hello world", "Hallo Welt")).mean() < 0.2


def test_exact_near_and_within_batch_duplicates() -> None:
    batch = [ACCEPTED[0],                                                     # exact duplicate of accepted 0
             ("I would like a cup of coffee please !", ACCEPTED[1][1]),      # near duplicate of accepted 1
             ("My cat sleeps all day long .", "Meine Katze schläft den ganzen Tag ."),
             ("My cat sleeps all day long .", "Meine Katze schläft den ganzen Tag ."),  # repeated within
             ("My cat sleeps all day long !", "Meine Katze schläft den ganzen Tag ."),  # near within
             ("Where is the bus stop ?", "Wo ist die Bushaltestelle ?")]      # new
    found = pair_signals(_cids(ACCEPTED), _sigs(ACCEPTED), _cids(batch), _sigs(batch))
    assert found["exact"] == [0]
    assert [(i, j) for i, j, _ in found["near"]] == [(1, 1)]
    assert 0.0 < found["near"][0][2] <= 1.0 - NEAR_JACCARD
    assert found["within_exact"] == [(3, 2)]
    assert [(i, j) for i, j, _ in found["within_near"]] == [(4, 2)]
    assert found["novel"] == 2


def test_results_pay_only_novel_pairs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = LocalBlobStore(tmp_path)

    def manifest(pairs: list[tuple[str, str]]) -> str:
        items = [ManifestItem(store.put(encode_pair(s, t, "x")), "", {"line": n + 1}) for n, (s, t) in
                 enumerate(pairs)]
        return str(store.put(Manifest(items).to_bytes()))

    batch = [ACCEPTED[0], ("Where is the bus stop ?", "Wo ist die Bushaltestelle ?")]
    inputs = {"method": "text-pairs", "policy": {"half_life_items": 200}, "cap": 1000, "base_reward": 10,
              "accepted": [manifest(ACCEPTED)], "proposal": manifest(batch)}
    results = text_pair_results(store, inputs)
    assert results["valued_by"] == "signals" and results["gain"]["mean"] == 0.0
    assert results["signals"]["exact_duplicates"] == [0]
    assert results["text_signals"]["novel_items"] == 1
    assert results["shares"] == int(10 * 200 / 203)  # one novel pair, discounted by the dataset's size
    assert text_pair_results(store, inputs) == results
