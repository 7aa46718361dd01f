"""Workers and coordinator over HTTP: a TMR job end to end, status JSON, refused payloads."""

from __future__ import annotations

import json
import pickle

import pytest
from fastapi.testclient import TestClient

from databright.compute import Task, run_task
from databright.compute._app import coordinator_app
from databright.compute._worker import Worker, run_workers
from databright.errors import ComputeError, InputError
from tests.unit.compute.conftest import FINGERPRINT, Market


def test_logical_workers_in_one_process_finish_a_tmr_job(market: Market) -> None:
    market.coordinator.add_job(market.job(), market.items, market.validation)
    with TestClient(coordinator_app(market.coordinator)) as client:
        assert client.get("/v1/status/jobs/1").json()["waiting"].startswith("waiting for workers")
        workers = [Worker(client, market.signer(), FINGERPRINT, 7) for _ in range(12)]
        assert run_workers(workers, until_idle=True) == 24
        job = client.get("/v1/status/jobs/1").json()
        assert job["status"] == "done" and job["report"] and 0.0 <= job["score"] <= 1.0
        status = client.get("/v1/status/workers").json()
        assert {w["tasks_accepted"] for w in status} == {2} and {w["earned_wei"] for w in status} == {"14"}
        ledger = client.get("/v1/status/exposure/1").json()
        assert len(ledger) == 12 and max(e["items"] for e in ledger) <= ledger[0]["cap_items"] == 10
        # A request without a signature, and a replayed one, are refused.
        assert client.post("/v1/claim").status_code == 403
        headers = workers[0].signer.headers("POST", "/v1/claim")
        assert client.post("/v1/claim", headers=headers).status_code == 204
        assert "replayed" in client.post("/v1/claim", headers=headers).json()["detail"]


def test_worker_refuses_a_pickled_checkpoint(market: Market) -> None:
    market.coordinator.add_job(market.job(redundancy=1), market.items)
    lease = market.coordinator.claim(market.signed(market.workers(1)[0], "POST", "/v1/claim"))
    assert lease is not None
    payload = pickle.dumps({"0.weight": [[1.0, 2.0]]})
    cid = str(market.store.put(payload))
    import hashlib

    hostile = Task(**{**lease.task.__dict__, "checkpoint": cid, "checkpoint_sha256": hashlib.sha256(payload).hexdigest()})
    with pytest.raises(InputError, match="safetensors"):
        run_task(hostile, market.store.get)
    with pytest.raises(InputError, match="does not match its CID"):
        run_task(lease.task, lambda c: payload)


def test_worker_cannot_fetch_outside_its_lease(market: Market) -> None:
    market.coordinator.add_job(market.job(redundancy=1), market.items)
    with TestClient(coordinator_app(market.coordinator)) as client:
        worker = Worker(client, market.signer(), FINGERPRINT, 1)
        worker.register()
        with pytest.raises(ComputeError, match="not part of any live lease"):
            worker.fetch(market.items[0][0])


def test_a_claim_can_bring_its_blobs_in_the_same_response(market: Market) -> None:
    market.coordinator.add_job(market.job(redundancy=1), market.items)
    with TestClient(coordinator_app(market.coordinator)) as client:
        worker, plain = (Worker(client, market.signer(), FINGERPRINT, 1) for _ in range(2))
        worker.register()
        plain.register()
        claimed = worker.claim()
        assert claimed is not None
        lease, blobs = claimed
        task = Task.from_json(json.dumps(lease["task"]))
        assert set(blobs) == task.blobs and all(market.store.get(c) == b for c, b in blobs.items())
        # Without the flag a claim answers with the lease's JSON alone, as before.
        assert set(plain.call("POST", "/v1/claim").json()) == set(lease)
        with pytest.raises(ComputeError, match="with_blobs"):
            plain.call("POST", "/v1/claim", b"[1]")
