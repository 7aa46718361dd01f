"""Serving predictions through workers over HTTP: majority answers, slashing, and refused requests."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from databright.compute import (
    Answer,
    ServingClient,
    ServingDesk,
    ServingJob,
    ServingWorker,
    frame_items,
    infer,
    run_serving_workers,
)
from databright.compute._app import coordinator_app
from databright.errors import ComputeError, InputError
from databright.ml import encode_items, encode_labels, predict_proba, save_checkpoint, train
from databright.storage import canonical_json
from tests.unit.compute.conftest import DOMAIN, FINGERPRINT, SPEC, Market

FEE = 5
QUERIES = [canonical_json({"a": a, "b": b}) for a, b in ((0.5, 0.2), (-1.0, -0.3), (0.1, -0.4))]


class Liar(ServingWorker):
    """Answers every request with the least probable class: a cheat only a group can catch."""

    def respond(self, lease: dict[str, Any]) -> Answer:
        honest = super().respond(lease)
        flipped = honest.probabilities[:, ::-1].copy()
        labels = tuple(SPEC.classes[int(np.argmax(row))] for row in flipped)
        return Answer(honest.request, honest.input_sha256, labels, flipped)


@dataclass
class Serving:
    market: Market
    desk: ServingDesk
    client: TestClient
    owner: Any
    state: dict[str, Any]

    def job(self, redundancy: int = 3, spot_check: float = 0.0, job_id: int = 1, budget: int = 10**6) -> int:
        blob = save_checkpoint(self.state)
        cid = str(self.market.store.put(blob))
        self.desk.add_job(ServingJob(job_id, 1, 1, self.owner.address, SPEC, cid, hashlib.sha256(blob).hexdigest(),
                                     redundancy, FEE, budget, spot_check))
        return job_id

    def workers(self, honest: int, liars: int = 0) -> list[ServingWorker]:
        return [(Liar if i >= honest else ServingWorker)(self.client, self.market.signer(), FINGERPRINT, 1)
                for i in range(honest + liars)]


@pytest.fixture
def serving(market: Market) -> Iterator[Serving]:
    x = encode_items(SPEC, [market.store.get(c) for c, _ in market.items])
    state = train(SPEC, None, x, encode_labels(SPEC, [label for _, label in market.items]), steps=20, seed=3)
    desk = ServingDesk(market.coordinator.engine, market.store, DOMAIN, answer_timeout_s=10.0, slash_wei=7)
    with TestClient(coordinator_app(market.coordinator, desk)) as client:
        yield Serving(market, desk, client, market.signer(), state)


def _run(workers: list[ServingWorker]) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=run_serving_workers, args=(workers, stop, 0.5), daemon=True)
    thread.start()
    return stop, thread


def test_a_group_answers_with_the_models_answer_and_the_liar_is_slashed(serving: Serving) -> None:
    job = serving.job()
    workers = serving.workers(honest=2, liars=1)
    stop, thread = _run(workers)
    try:
        backend = ServingClient(serving.client, serving.owner, job, SPEC.classes)
        local = predict_proba(SPEC, serving.state, encode_items(SPEC, QUERIES))
        for _ in range(3):
            got = backend(QUERIES)
            assert got.tobytes() == local.tobytes()  # bit-identical to running the model here
            assert backend.last["answered_by"] == "workers"
    finally:
        stop.set()
        thread.join(timeout=30)
    status = serving.client.get(f"/v1/serving/jobs/{job}").json()
    liar, honest = workers[2].signer.address, [w.signer.address for w in workers[:2]]
    assert status["workers"][liar] == {"agreed": 0, "odd": 1}  # banned after its first lie
    assert all(status["workers"][h]["agreed"] == 3 * len(QUERIES) for h in honest)
    settlement = serving.desk.settlement(job)
    assert {(p.worker, p.tasks, p.fee_per_task) for p in settlement.payments} == {
        (h, 3 * len(QUERIES), FEE) for h in honest}
    (slash,) = settlement.slashes
    assert (slash.worker, slash.amount) == (liar, 7)
    evidence = json.loads(serving.market.store.get(slash.evidence_cid))
    assert evidence["submission"]["worker"] == liar and len(evidence["accepted_by"]) == 2
    assert {e["worker"] for e in evidence["accepted_by"]} <= set(honest)
    report = json.loads(serving.market.store.get(settlement.report_cid))
    assert report["predictions"] == 3 * len(QUERIES) and report["answered_by_coordinator"] == 0


def test_spot_checks_replace_a_lying_single_worker(serving: Serving) -> None:
    job = serving.job(redundancy=1, spot_check=1.0)
    (liar,) = serving.workers(honest=0, liars=1)
    stop, thread = _run([liar])
    try:
        backend = ServingClient(serving.client, serving.owner, job, SPEC.classes)
        local = predict_proba(SPEC, serving.state, encode_items(SPEC, QUERIES))
        assert backend(QUERIES).tobytes() == local.tobytes()
        assert backend.last["answered_by"] == "coordinator"
    finally:
        stop.set()
        thread.join(timeout=30)
    settlement = serving.desk.settlement(job)
    assert settlement.payments == () and [s.worker for s in settlement.slashes] == [liar.signer.address]


def test_the_coordinator_answers_when_no_worker_does(serving: Serving) -> None:
    serving.desk.answer_timeout_s = 0.3
    job = serving.job()
    backend = ServingClient(serving.client, serving.owner, job, SPEC.classes)
    local = predict_proba(SPEC, serving.state, encode_items(SPEC, QUERIES))
    assert backend(QUERIES).tobytes() == local.tobytes() and backend.last["answered_by"] == "coordinator"


def test_refused_requests(serving: Serving) -> None:
    job = serving.job()
    client = serving.client
    path = f"/v1/serving/jobs/{job}/predict"
    body = frame_items(QUERIES)
    assert client.post(path, content=body).status_code == 403  # unsigned
    stranger = serving.market.signer()
    refused = client.post(path, content=body, headers=stranger.headers("POST", path, body))
    assert refused.status_code == 403 and "only the model's owner" in refused.json()["detail"]
    # a worker's claim replayed, and a claim by an unregistered key
    worker = serving.workers(honest=1)[0]
    worker.register()
    claim = json.dumps({"wait": 0}).encode()
    headers = worker.signer.headers("POST", "/v1/serving/claim", claim)
    assert client.post("/v1/serving/claim", content=claim, headers=headers).status_code == 204
    assert "replayed" in client.post("/v1/serving/claim", content=claim, headers=headers).json()["detail"]
    unknown = serving.market.signer()
    assert client.post("/v1/serving/claim", content=claim,
                       headers=unknown.headers("POST", "/v1/serving/claim", claim)).status_code == 404
    # the owner's request waits while workers take it: answer it by hand
    answers: dict[str, Any] = {}
    asking = threading.Thread(target=lambda: answers.update(
        out=ServingClient(client, serving.owner, job, SPEC.classes)(QUERIES)), daemon=True)
    asking.start()
    response = client.post("/v1/serving/claim", content=json.dumps({"wait": 5}).encode(),
                           headers=worker.signer.headers("POST", "/v1/serving/claim", json.dumps({"wait": 5}).encode()))
    lease = response.json()
    assert [base64.b64decode(i) for i in lease["items"]] == QUERIES

    def post(who: ServingWorker, answer_id: int, payload: bytes) -> Any:
        target = f"/v1/serving/answers/{answer_id}"
        return client.post(target, content=payload, headers=who.signer.headers("POST", target, payload))

    honest = infer(SPEC, serving.state, QUERIES, lease["request"], lease["input_sha256"])
    other = serving.workers(honest=1)[0]
    other.register()
    assert post(other, lease["answer"], honest.to_json()).status_code == 404  # someone else's lease
    assert "malformed answer" in post(worker, lease["answer"], b"{\"labels\": 1}").json()["detail"]
    wrong_label = json.loads(honest.to_json())
    wrong_label["labels"][0] = "pos" if wrong_label["labels"][0] == "neg" else "neg"
    assert "most probable" in post(worker, lease["answer"], canonical_json(wrong_label)).json()["detail"]
    elsewhere = Answer(lease["request"] + 1, lease["input_sha256"], honest.labels, honest.probabilities)
    assert "another request" in post(worker, lease["answer"], elsewhere.to_json()).json()["detail"]
    assert post(worker, lease["answer"], honest.to_json()).json() == {"request": "pending"}
    assert "is answered" in post(worker, lease["answer"], honest.to_json()).json()["detail"]
    serving.desk.answer_timeout_s = 0.2  # let the coordinator finish the request
    asking.join(timeout=30)
    assert answers["out"].tobytes() == honest.probabilities.tobytes()
    # a worker may fetch only the model of a job it serves
    cid = lease["checkpoint"]
    assert other.client.get(f"/v1/serving/blobs/{cid}",
                            headers=other.signer.headers("GET", f"/v1/serving/blobs/{cid}")).status_code == 403


def test_answers_are_parsed_strictly() -> None:
    proba = np.array([[0.25, 0.75]], dtype=np.float32)
    good = Answer(1, "ab", ("pos",), proba).to_json()
    assert Answer.parse(good, SPEC.classes, 1).digest == Answer(1, "ab", ("pos",), proba).digest
    with pytest.raises(InputError, match="2 items"):
        Answer.parse(good, SPEC.classes, 2)
    bad = json.loads(good)
    bad["probabilities"] = base64.b64encode(np.array([[np.nan, 1.0]], dtype="<f4").tobytes()).decode()
    with pytest.raises(InputError, match="outside"):
        Answer.parse(canonical_json(bad), SPEC.classes, 1)
    with pytest.raises(InputError, match="malformed"):
        Answer.parse(b"\x80\x04pickle", SPEC.classes, 1)
    # Under py-evm's raised recursion limit (this process holds the chain) json.loads would overflow the C stack.
    with pytest.raises(InputError, match="malformed"):
        Answer.parse(b"[" * 200_000 + b"]" * 200_000, SPEC.classes, 1)


def test_a_refused_request_is_a_compute_error(serving: Serving) -> None:
    backend = ServingClient(serving.client, serving.owner, 99, SPEC.classes)
    with pytest.raises(ComputeError, match="unknown serving job: 99"):
        backend(QUERIES)
