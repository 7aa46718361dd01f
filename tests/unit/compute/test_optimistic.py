"""Optimistically verified jobs over HTTP: honest runs accepted, faked segments caught and slashed, restarts."""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import select

from databright.compute import Coordinator, JobConfig, JobSettings, connect
from databright.compute._app import coordinator_app
from databright.compute._challenges import commitment_from_json, pack_answer, proof_from_json
from databright.compute._optimistic import Optimistic
from databright.compute._schema import challenges, commitments, slashes
from databright.compute._verification import check_evidence
from databright.compute._worker import Worker, run_workers
from databright.ml import encode_items, encode_labels, save_checkpoint
from databright.storage import canonical_json
from tests.unit.compute._byzantine import FakingWorker
from tests.unit.compute.conftest import DOMAIN, FINGERPRINT, SPEC, Market

STEPS = 8  # one-step segments by default: 8 segments per task


def _job(market: Market, settings: JobSettings | None = None, rounds: int = 2) -> JobConfig:
    return market.job(rounds=rounds, local_steps=STEPS, redundancy=1, max_exposure_bps=2500,
                      **({} if settings is None else {"settings": settings}))  # type: ignore[arg-type]


def _report(market: Market, client: TestClient) -> dict:  # type: ignore[type-arg]
    status = client.get("/v1/status/jobs/1").json()
    assert status["status"] == "done", status
    return json.loads(market.store.get(status["report"]))


def test_honest_optimistic_job_completes_with_the_bits_of_plain_training(market: Market, tmp_path: Path) -> None:
    market.coordinator.add_job(_job(market, JobSettings("optimistic")), market.items, market.validation)
    with TestClient(coordinator_app(market.coordinator)) as client:
        workers = [Worker(client, market.signer(), FINGERPRINT, 7) for _ in range(4)]
        assert run_workers(workers, until_idle=True) >= 8
        report = _report(market, client)
        assert all(not w.pending for w in workers)
    leases = [lease for task in report["tasks"] for lease in task["leases"]]
    assert len(leases) == 8 and {lease["verdict"] for lease in leases} == {"agree"}
    checked = leases[0]["verification"]
    assert checked["verdict"] == "accepted" and checked["segments"] == STEPS and checked["interval"] == 1
    # samples_for(8, 0.10, 0.99) is every segment: each replayed once.
    assert checked["sampled"] == list(range(STEPS)) and checked["replayed_steps"] == STEPS
    settlement = market.coordinator.settlement(1)
    assert settlement.slashes == () and sum(p.tasks for p in settlement.payments) == 8

    # The same job trusted to one worker (no commitments) ends in the very same checkpoint.
    engine = connect(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    plain = Coordinator(engine, market.store, DOMAIN)
    plain.add_job(_job(market), market.items, market.validation)
    with TestClient(coordinator_app(plain)) as client:
        run_workers([Worker(client, market.signer(), FINGERPRINT, 7) for _ in range(4)], until_idle=True)
        assert client.get("/v1/status/jobs/1").json()["checkpoint"] == report["checkpoint"]
    engine.dispose()


@pytest.mark.parametrize(("fraction", "mode"), [(0.10, "perturb"), (1.0, "skip"), (0.10, "replay")])
def test_a_faking_worker_is_caught_slashed_with_checkable_evidence_and_the_job_completes(
        market: Market, fraction: float, mode: str) -> None:
    c = market.coordinator
    c.add_job(_job(market, JobSettings("optimistic", samples=STEPS), rounds=1), market.items, market.validation)
    with TestClient(coordinator_app(c)) as client:
        cheat = FakingWorker(client, market.signer(), FINGERPRINT, 7, fraction=fraction, mode=mode)
        honest = [Worker(client, market.signer(), FINGERPRINT, 7) for _ in range(4)]
        run_workers([cheat, *honest], until_idle=True)
        report = _report(market, client)
        assert client.post("/v1/claim", headers=cheat.signer.headers("POST", "/v1/claim")).status_code == 403
    settlement = c.settlement(1)
    assert [s.worker for s in settlement.slashes] == [cheat.signer.address]
    assert cheat.signer.address not in {p.worker for p in settlement.payments}
    assert sum(p.tasks for p in settlement.payments) == 4  # every task accepted from an honest worker
    rejected = [lease for task in report["tasks"] for lease in task["leases"] if lease["status"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["verification"]["verdict"] == "rejected"
    evidence = json.loads(market.store.get(settlement.slashes[0].evidence_cid))
    assert evidence["kind"] in ("segment", "start") and len(evidence["snapshot_cids"]) == len(evidence["proofs"])
    if evidence["kind"] == "segment":
        task = next(t for t in report["tasks"] if t["index"] == evidence["task"])
        shard = [(cid, label) for cid, label in market.items if cid in _shard_cids(market, task["index"])]
        x = encode_items(SPEC, [market.store.get(cid) for cid, _ in shard])
        y = encode_labels(SPEC, [label for _, label in shard])
        blobs = [market.store.get(cid) for cid in evidence["snapshot_cids"]]
        commitment = commitment_from_json(canonical_json(evidence["commitment"]))
        assert check_evidence(SPEC, x, y, evidence, blobs, [proof_from_json(p) for p in evidence["proofs"]],
                              commitment, DOMAIN, cheat.signer.address)


def _shard_cids(market: Market, index: int) -> set[str]:
    from databright.compute._schema import job_items

    with market.coordinator.engine.connect() as conn:
        return set(conn.execute(select(job_items.c.cid).where(job_items.c.shard == index)).scalars())


def _submitted(market: Market, client: TestClient, worker: Worker) -> int:
    """Let ``worker`` take and submit one optimistic task without answering; its lease id."""
    worker.register()
    answer = worker.answer_challenges
    worker.answer_challenges = lambda: False  # type: ignore[method-assign]
    assert worker.step()
    worker.answer_challenges = answer  # type: ignore[method-assign]
    (lease,) = worker.pending
    return lease


def test_challenge_endpoints_refuse_what_is_not_a_signed_proven_snapshot(market: Market) -> None:
    market.coordinator.add_job(_job(market, JobSettings("optimistic")), market.items, market.validation)
    with TestClient(coordinator_app(market.coordinator)) as client:
        worker, other = (Worker(client, market.signer(), FINGERPRINT, 7) for _ in range(2))
        other.register()
        lease = _submitted(market, client, worker)
        path = f"/v1/leases/{lease}/challenges"
        assert client.get(path).status_code == 403  # unsigned
        headers = worker.signer.headers("GET", path)
        state = client.get(path, headers=headers).json()
        assert state["status"] == "challenging" and state["challenges"]
        assert "replayed" in client.get(path, headers=headers).json()["detail"]
        assert client.get(path, headers=other.signer.headers("GET", path)).status_code == 404  # not its lease
        leaf = state["challenges"][0]["leaf"]
        snapshot, proof = worker.pending[lease].serve(leaf)

        def post(body: bytes, who: Worker = worker, at: int = leaf) -> tuple[int, str]:
            url = f"{path}/{at}"
            response = client.post(url, content=body, headers=who.signer.headers("POST", url, body))
            return response.status_code, response.json().get("detail", "")

        assert post(pack_answer(snapshot, proof), other)[0] == 404  # someone else's lease
        assert post(b"\x00\x00")[1].startswith("an answer is")
        assert "proof length" in post(b"\xff\xff\xff\xff" + snapshot)[1]
        assert "not JSON" in post(b"\x00\x00\x00\x02{[" + snapshot)[1]
        assert "safetensors" in post(pack_answer(pickle.dumps({"w": [1.0]}), proof))[1]
        assert "exceeds" in post(pack_answer(snapshot + b"\x00" * 10**6, proof))[1]
        wrong = worker.pending[lease].serve((leaf + 1) % STEPS)[0]
        assert "Merkle proof" in post(pack_answer(wrong, proof))[1]
        assert post(pack_answer(snapshot, proof), at=STEPS + 5)[0] == 404  # a leaf nobody asked for
        url = f"{path}/{leaf}"
        body = pack_answer(snapshot, proof)
        signed = worker.signer.headers("POST", url, body)
        assert client.post(url, content=body + b"x", headers=signed).status_code == 403  # body not the signed one
        assert post(body)[0] == 200
        assert "already served" in post(body)[1]


def test_a_worker_that_does_not_answer_in_time_is_treated_as_a_cheat(market: Market) -> None:
    c = market.coordinator
    c.add_job(_job(market, JobSettings("optimistic"), rounds=1), market.items, market.validation)
    with TestClient(coordinator_app(c)) as client:
        silent = Worker(client, market.signer(), FINGERPRINT, 7)
        lease = _submitted(market, client, silent)
        c.tick()
        assert client.get("/v1/status/jobs/1").json()["slashes"] == 0
        c.clock = lambda: 10**12  # far past every challenge deadline
        c.tick()
        with c.engine.connect() as conn:
            row = conn.execute(select(commitments).where(commitments.c.assignment_id == lease)).one()
            slashed = conn.execute(select(slashes.c.worker, slashes.c.evidence_cid)).all()
        assert row.status == "rejected" and "not served by its challenge's deadline" in row.reason
        assert [w for w, _ in slashed] == [silent.signer.address]
        evidence = json.loads(market.store.get(slashed[0][1]))
        assert evidence["kind"] == "refused" and evidence["commitment"]["signature"] and evidence["submission"]
        # The task is open again, for a worker that answers.
        honest = Worker(client, market.signer(), FINGERPRINT, 7)
        c.clock = time.time
        run_workers([honest], until_idle=True)
        assert client.get("/v1/status/jobs/1").json()["round_detail"][0]["accepted"] >= 1


def test_a_coordinator_restarted_mid_verification_resumes_from_the_database(market: Market, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    market.coordinator.add_job(_job(market, JobSettings("optimistic"), rounds=1), market.items, market.validation)
    monkeypatch.setattr(Optimistic, "check", lambda self, lease_id: None)  # dies before checking anything
    with TestClient(coordinator_app(market.coordinator)) as client:
        workers = [Worker(client, market.signer(), FINGERPRINT, 7) for _ in range(4)]
        for w in workers:
            w.register()
            assert w.step() and w.answer_challenges()
    market.coordinator.engine.dispose()
    with market.coordinator.engine.connect() as conn:
        assert conn.execute(select(challenges).where(challenges.c.snapshot_cid.is_(None))).first() is None
        assert set(conn.execute(select(commitments.c.status)).scalars()) == {"challenging"}
    monkeypatch.undo()
    engine = connect(f"sqlite:///{tmp_path / 'coordinator.sqlite'}")
    restarted = Coordinator(engine, market.store, DOMAIN)
    restarted.tick()
    with TestClient(coordinator_app(restarted)) as client:
        assert client.get("/v1/status/jobs/1").json()["status"] == "done"
        for w in workers:
            w.client = client
            w.answer_challenges()
            assert not w.pending
    assert sum(p.tasks for p in restarted.settlement(1).payments) == 4
    engine.dispose()


def test_a_plain_result_or_a_foreign_commitment_is_refused_for_an_optimistic_lease(market: Market) -> None:
    market.coordinator.add_job(_job(market, JobSettings("optimistic")), market.items, market.validation)
    with TestClient(coordinator_app(market.coordinator)) as client:
        worker = Worker(client, market.signer(), FINGERPRINT, 7)
        worker.register()
        claim = worker._call("POST", "/v1/claim").json()
        assert claim["commit_every"] == 1
        lease = claim["lease"]
        state = save_checkpoint({"w": torch.zeros(1)})
        path = f"/v1/leases/{lease}/result"
        response = client.post(path, content=state, headers=worker.signer.headers("POST", path, state))
        assert response.status_code in (400, 403)
        commit = f"/v1/leases/{lease}/commitment"
        bogus = canonical_json({"task": "0x" + "00" * 32, "root": "0x" + "11" * 32, "leaves": 9, "interval": 1,
                                "steps": STEPS, "result": "0x" + hashlib.sha256(state).hexdigest(),
                                "signature": "0x" + "22" * 65})
        detail = client.post(commit, content=bogus, headers=worker.signer.headers("POST", commit, bogus)).json()
        assert "does not describe lease" in detail["detail"]
        assert "not JSON" in client.post(commit, content=b"{", headers=worker.signer.headers(
            "POST", commit, b"{")).json()["detail"]
