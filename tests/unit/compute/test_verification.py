"""Optimistic verification against honest and byzantine workers, with the detection rates the formula predicts."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from databright.compute._commitments import MerkleTree, commit_training, verify_proof
from databright.compute._verification import (
    check_evidence,
    detection_probability,
    min_stake,
    sample_segments,
    samples_for,
    verify_run,
)
from databright.errors import InputError
from databright.ml import save_checkpoint
from tests.unit.compute._byzantine import MODES, cheating_run, weights_of
from tests.unit.compute.conftest import DOMAIN, SPEC

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
WORKER = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
SPEC_MB = SPEC.model_copy(update={"batch_size": 8, "optimizer": "sgd", "lr": 0.1})
TASK = hashlib.sha256(b"task").digest()
STEPS = 40


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(48, 2)).astype(np.float32)
    return x, (x.sum(axis=1) > 0).astype(np.int64)


def _verify(run, x, y, secret: bytes, samples: int, serve=None):  # type: ignore[no-untyped-def]
    segments = sample_segments(run.commitment, secret, samples)
    return verify_run(SPEC_MB, None, x, y, seed=5, commitment=run.commitment, result=weights_of(run),
                      serve=serve or run.serve, segments=segments, domain=DOMAIN, worker=WORKER)


def test_merkle_proofs_hold_for_every_leaf_and_fail_for_any_other() -> None:
    for count in (1, 2, 3, 5, 8, 13):
        digests = [hashlib.sha256(bytes([i])).digest() for i in range(count)]
        tree = MerkleTree(digests)
        for i, d in enumerate(digests):
            assert verify_proof(tree.root, i, count, d, tree.proof(i))
            assert not verify_proof(tree.root, i, count, hashlib.sha256(d).digest(), tree.proof(i))
            if count > 1:
                assert not verify_proof(tree.root, (i + 1) % count, count, d, tree.proof(i))
    # An inner node never passes as a leaf (domain-separated hashing).
    tree = MerkleTree([hashlib.sha256(bytes([i])).digest() for i in range(4)])
    assert not verify_proof(tree.root, 0, 2, tree.levels[1][0], tree.proof(0)[1:])


def test_honest_worker_passes_and_its_result_is_train_bits() -> None:
    x, y = _data()
    run = commit_training(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=4, task=TASK, domain=DOMAIN, key=KEY)
    assert run.commitment.signer(DOMAIN) == WORKER and run.commitment.leaves == 11
    from databright.ml import train
    assert save_checkpoint(run.weights) == save_checkpoint(train(SPEC_MB, None, x, y, steps=STEPS, seed=5))
    outcome = _verify(run, x, y, b"secret", 3)
    assert outcome.accepted, outcome.reason
    assert outcome.replayed_steps == 12 and len(outcome.checked) == 3


@pytest.mark.parametrize("mode", MODES)
def test_a_faked_segment_is_found_by_bisection_and_the_evidence_verifies(mode: str) -> None:
    x, y = _data()
    run = cheating_run(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=2, task=TASK, domain=DOMAIN, key=KEY,
                       faked={6}, mode=mode)
    # Sampling every segment, the checks after the fake still replay: only segment 6 is bad.
    outcome = _verify(run, x, y, b"s", 20)
    assert not outcome.accepted and outcome.bad_segment == 6
    # Starting from a later mismatch, bisection walks back to the first diverging segment.
    later = cheating_run(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=2, task=TASK, domain=DOMAIN,
                         key=KEY, faked={6, 15}, mode=mode)
    segments = [15]
    found = verify_run(SPEC_MB, None, x, y, seed=5, commitment=later.commitment, result=weights_of(later),
                       serve=later.serve, segments=segments, domain=DOMAIN, worker=WORKER)
    assert found.bad_segment == 6 and found.evidence is not None
    proofs = [later.tree.proof(6), later.tree.proof(7)]
    assert check_evidence(SPEC_MB, x, y, found.evidence, found.blobs, proofs, later.commitment, DOMAIN, WORKER)
    # The same evidence against an honest segment does not hold.
    honest = [later.snapshots[2], later.snapshots[3]]
    evidence = {**found.evidence, "leaf": 2}
    assert not check_evidence(SPEC_MB, x, y, evidence, honest, [later.tree.proof(2), later.tree.proof(3)],
                              later.commitment, DOMAIN, WORKER)


@pytest.mark.parametrize(("fraction", "samples"), [(0.05, 4), (0.25, 3), (1.0, 1)])
def test_detection_rate_over_many_jobs_matches_the_formula(fraction: float, samples: int) -> None:
    x, y = _data()
    segments, jobs, caught = STEPS // 2, 40, 0
    faked_count = max(1, math.ceil(fraction * segments))
    rng = np.random.default_rng(int(fraction * 100))
    for job in range(jobs):
        faked = {int(i) for i in rng.choice(segments, size=faked_count, replace=False)}
        run = cheating_run(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=2, task=TASK, domain=DOMAIN,
                           key=KEY, faked=faked, mode=MODES[job % 3])
        caught += not _verify(run, x, y, job.to_bytes(4, "big"), samples).accepted
    p = detection_probability(segments, faked_count, samples)
    sigma = math.sqrt(jobs * p * (1 - p))
    assert abs(caught - jobs * p) <= 4 * sigma + 1e-9, (caught, jobs * p)


def test_a_worker_that_refuses_or_serves_a_bad_snapshot_is_treated_as_cheating() -> None:
    x, y = _data()
    run = commit_training(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=4, task=TASK, domain=DOMAIN, key=KEY)

    def refuse(index: int):  # type: ignore[no-untyped-def]
        if index not in (0, run.commitment.leaves - 1):
            raise ConnectionError("gone")
        return run.serve(index)

    def pickle(index: int):  # type: ignore[no-untyped-def]
        blob, proof = run.serve(index)
        return (blob if index in (0, run.commitment.leaves - 1) else b"\x80\x04K\x01."), proof

    for serve in (refuse, pickle):
        outcome = _verify(run, x, y, b"secret", 3, serve)
        assert not outcome.accepted and "treated as cheating" in outcome.reason


def test_a_commitment_by_another_key_or_for_another_result_is_refused() -> None:
    x, y = _data()
    run = commit_training(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=4, task=TASK, domain=DOMAIN, key=KEY)
    outcome = verify_run(SPEC_MB, None, x, y, seed=5, commitment=run.commitment, result=b"other", serve=run.serve,
                         segments=[0], domain=DOMAIN, worker=WORKER)
    assert not outcome.accepted
    outcome = verify_run(SPEC_MB, None, x, y, seed=5, commitment=run.commitment, result=weights_of(run),
                         serve=run.serve, segments=[0], domain=DOMAIN, worker="0x" + "11" * 20)
    assert not outcome.accepted


def test_economics_defaults_meet_the_goal() -> None:
    # 400 one-step segments: 42 samples catch a 10% faker in 99% of jobs at 10.5% extra compute.
    samples = samples_for(400, 0.10, 0.99)
    assert detection_probability(400, 40, samples) >= 0.99 > detection_probability(400, 40, samples - 1)
    assert samples / 400 <= 0.15
    assert abs(detection_probability(400, 40, samples) - (1 - 0.9 ** samples)) < 0.01
    stake = min_stake(1.0, 400, samples)
    p = samples / 400
    assert (1 - p) * (1.0 / 400) - p * stake <= 1e-12  # faking one segment does not pay
    with pytest.raises(InputError):
        commit_training(SPEC_MB, None, *_data(), steps=4, seed=0, interval=0, task=TASK, domain=DOMAIN, key=KEY)


def test_a_rejected_run_becomes_a_slash_whose_evidence_blobs_are_stored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from databright.compute._verification import slash_for
    from databright.storage import LocalBlobStore

    x, y = _data()
    store = LocalBlobStore(tmp_path)
    run = cheating_run(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=2, task=TASK, domain=DOMAIN, key=KEY,
                       faked={3}, mode="perturb")
    outcome = _verify(run, x, y, b"s", 20)
    slash = slash_for(outcome, WORKER, 10, store)
    assert slash is not None and slash.worker == WORKER and slash.amount == 10
    evidence = json.loads(store.get(slash.evidence_cid))
    assert evidence["leaf"] == 3 and evidence["commitment"]["root"] == "0x" + run.commitment.root.hex()
    blobs = [store.get(cid) for cid in evidence["snapshot_cids"]]
    assert blobs == [run.snapshots[3], run.snapshots[4]]
    assert check_evidence(SPEC_MB, x, y, evidence, blobs, [run.tree.proof(3), run.tree.proof(4)], run.commitment,
                          DOMAIN, WORKER)
    honest = commit_training(SPEC_MB, None, x, y, steps=STEPS, seed=5, interval=4, task=TASK, domain=DOMAIN, key=KEY)
    assert slash_for(_verify(honest, x, y, b"s", 2), WORKER, 10, store) is None
