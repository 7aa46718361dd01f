"""Split jobs through the coordinator: pipelines of stage leases, confined blobs, rendezvous, hostile stages."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from coincurve import PrivateKey
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from fastapi.testclient import TestClient
from httpx import Response

from databright.compute import Coordinator, JobConfig, RequestSigner, connect
from databright.compute._app import coordinator_app
from databright.compute._jobspec import JobSettings
from databright.compute._pipeline import StageTimes
from databright.compute._splitting import Stage
from databright.compute._stage_channel import ChannelError, StageToken, accept_stage, connect_stage
from databright.compute._stage_worker import StageRun, StageTask
from databright.compute._worker import Worker, run_workers
from databright.errors import RequestError
from databright.ml import ModelSpec, load_checkpoint, save_checkpoint
from databright.storage import LocalBlobStore, Manifest, ManifestItem
from tests.unit.compute.conftest import DOMAIN, FINGERPRINT, table_items

KEY = bytes([9]) * 32
COORDINATOR = to_checksum_address(keccak(PrivateKey(KEY).public_key.format(compressed=False)[1:])[-20:])
# Minibatches of 4 from shards of 10: the pieces must follow the seeded batch stream, not a full batch.
SPEC = ModelSpec(kind="mlp", input="table", features=("a", "b"), classes=("neg", "pos"), hidden=(6,),
                 batch_size=4, lr=0.05)


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.store = LocalBlobStore(tmp_path / "blobs")
        self.items = table_items(self.store, 40)
        val = Manifest([ManifestItem(cid, label) for cid, label in table_items(self.store, 20, seed=1)])
        self.validation = str(val.save(self.store))
        self.engines: list[object] = []

    def coordinator(self, name: str, lease_s: float = 30) -> Coordinator:
        engine = connect(f"sqlite:///{self.tmp / name}")
        self.engines.append(engine)
        return Coordinator(engine, self.store, DOMAIN, lease_s=lease_s, key=KEY)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    for engine in s.engines:
        engine.dispose()  # type: ignore[attr-defined]


def _job(split: int, job_id: int = 1, rounds: int = 2, exposure: int = 2500) -> JobConfig:
    settings = JobSettings("none", split=split) if split > 1 else None
    return JobConfig(job_id, 1, SPEC, rounds=rounds, local_steps=3, redundancy=1, max_exposure_bps=exposure,
                     budget=10**6, settings=settings)


def _workers(client: TestClient, n: int, kind: type[Worker] = Worker) -> list[Worker]:
    return [kind(client, RequestSigner(DOMAIN, bytes([40 + i]) * 32), FINGERPRINT, 1) for i in range(n)]


def _final(coordinator: Coordinator) -> dict[str, object]:
    with TestClient(coordinator_app(coordinator)) as client:
        return client.get("/v1/status/jobs/1").json()  # type: ignore[no-any-return]


def test_a_split_job_trains_the_bits_of_the_unsplit_job(setup: Setup) -> None:
    split = setup.coordinator("split.sqlite")
    split.add_job(_job(2), setup.items, setup.validation)
    whole = setup.coordinator("whole.sqlite")
    whole.add_job(_job(1), setup.items, setup.validation)
    for coordinator, count in ((split, 8), (whole, 4)):
        with TestClient(coordinator_app(coordinator)) as client:
            workers = _workers(client, count)
            run_workers(workers, idle_s=0.05, until_idle=True)
            assert not [e for w in workers for e in w.stage_errors]
    done_split, done_whole = _final(split), _final(whole)
    assert done_split["status"] == done_whole["status"] == "done"
    report = json.loads(setup.store.get(str(done_split["report"])))
    whole_report = json.loads(setup.store.get(str(done_whole["report"])))
    # Pipelined training gives the whole model's bits, round after round.
    assert report["checkpoint_sha256"] == whole_report["checkpoint_sha256"]
    assert [r["sha256"] for r in report["round_checkpoints"]] == [r["sha256"] for r in whole_report["round_checkpoints"]]
    pieces = report["split"]["pieces"]
    assert [p["layers"] for p in pieces] == [["flatten", "linear", "relu"], ["linear"]]
    assert [p["params"] for p in pieces] == [2 * 6 + 6, 6 * 2 + 2]
    pipelines = report["split"]["pipelines"]
    assert len(pipelines) == 8 and {p["status"] for p in pipelines} == {"submitted"}
    for p in pipelines:  # two different workers held the two pieces of each task
        assert len({s["worker"] for s in p["stages"]}) == 2
    # Only stage 0 fetched items: the exposure ledger names no worker that held stage 1 only.
    stage0 = {s["worker"] for p in pipelines for s in p["stages"] if s["stage"] == 0}
    ledger = {e["worker"] for e in _ledger(split)}
    assert ledger == stage0


def _ledger(coordinator: Coordinator) -> list[dict[str, object]]:
    with TestClient(coordinator_app(coordinator)) as client:
        return client.get("/v1/status/exposure/1").json()  # type: ignore[no-any-return]


def _claim(coordinator: Coordinator, signer: RequestSigner) -> tuple[int, StageTask]:
    coordinator.register_worker(signer.address, FINGERPRINT, 1)
    headers = signer.headers("POST", "/v1/claim")
    lease = coordinator.claim(coordinator.authenticate("POST", "/v1/claim", b"", headers))
    assert lease is not None and isinstance(lease.task, StageTask)
    return lease.id, lease.task


def test_a_stage_fetches_its_own_piece_and_nothing_else(setup: Setup) -> None:
    coordinator = setup.coordinator("c.sqlite")
    coordinator.add_job(_job(2, rounds=1, exposure=5000), setup.items, setup.validation)
    first, second = (RequestSigner(DOMAIN, bytes([n]) * 32) for n in (21, 22))
    _, upstream = _claim(coordinator, first)
    _, downstream = _claim(coordinator, second)
    assert (upstream.stage.index, downstream.stage.index) == (0, 1) and upstream.pipeline == downstream.pipeline
    assert downstream.shard == () and len(upstream.shard) == 20
    piece = coordinator.blob(first.address, upstream.checkpoint)
    assert set(load_checkpoint(piece)) == {"1.weight", "1.bias"}  # a piece, not the model
    assert len(coordinator.blobs(first.address, [cid for cid, _ in upstream.shard])) == 20
    assert set(load_checkpoint(coordinator.blob(second.address, downstream.checkpoint))) == {"0.weight", "0.bias"}
    round_checkpoint = _round_start(coordinator)
    for worker, cid in ((second.address, upstream.checkpoint), (first.address, downstream.checkpoint),
                        (second.address, upstream.shard[0][0]), (first.address, round_checkpoint)):
        with pytest.raises(RequestError, match="not part of any live lease"):
            coordinator.blob(worker, cid)


def _round_start(coordinator: Coordinator) -> str:
    from sqlalchemy import select

    from databright.compute._schema import rounds

    with coordinator.engine.connect() as conn:
        return str(conn.execute(select(rounds.c.checkpoint_cid)).scalar_one())


def _signer(n: int) -> RequestSigner:
    return RequestSigner(DOMAIN, bytes([n]) * 32)


def _post(client: TestClient, signer: RequestSigner, path: str, body: bytes = b"") -> tuple[int, object]:
    response = client.post(path, content=body, headers=signer.headers("POST", path, body))
    return response.status_code, (response.json() if response.content else None)


def test_the_rendezvous_endpoints_are_signed_and_bound_to_the_lease(setup: Setup) -> None:
    coordinator = setup.coordinator("c.sqlite")
    coordinator.add_job(_job(2, rounds=1, exposure=10000), setup.items, setup.validation)
    coordinator.add_job(_job(2, job_id=2, rounds=1, exposure=10000), setup.items, setup.validation)
    first, second = _signer(21), _signer(22)
    up_lease, up = _claim(coordinator, first)
    down_lease, down = _claim(coordinator, second)
    assert (up.job, down.job, up.stage.index, down.stage.index) == (1, 1, 0, 1)
    with TestClient(coordinator_app(coordinator)) as client:
        peers = f"/v1/stages/{up_lease}/peers"
        assert client.post(peers).status_code == 403  # unsigned
        headers = first.headers("POST", peers)
        assert client.post(peers, headers=headers).status_code == 204  # forming: stage 1 does not listen yet
        replay = client.post(peers, headers=headers)
        assert replay.status_code == 403 and "replayed" in replay.json()["detail"]
        assert _post(client, second, peers)[0] == 404  # another worker's lease
        code, body = _post(client, first, f"/v1/stages/{up_lease}/listen", b'{"host": "127.0.0.1", "port": 9}')
        assert code == 400 and "no upstream" in str(body)
        assert _post(client, second, f"/v1/stages/{down_lease}/listen", b'{"host": "127.0.0.1", "port": "x"}')[0] == 400
        listen = json.dumps({"host": "127.0.0.1", "port": 45678}).encode()
        assert _post(client, second, f"/v1/stages/{down_lease}/listen", listen) == (200, {"pipeline": "running"})
        code, answer = _post(client, first, peers)
        assert code == 200 and isinstance(answer, dict)
        assert answer["coordinator"] == COORDINATOR and answer["upstream"] is None
        assert answer["downstream"]["address"] == "127.0.0.1:45678"
        token = StageToken.from_bytes(bytes.fromhex(answer["downstream"]["token"]))
        assert (token.job, token.task, token.stage, token.sender, token.receiver) == (
            1, up.pipeline, 0, first.address, second.address)
        code, answer = _post(client, second, f"/v1/stages/{down_lease}/peers")
        assert code == 200 and isinstance(answer, dict)
        assert answer["upstream"] == first.address and answer["downstream"] is None
        # The same two workers in job 2: its token opens no channel of job 1.
        other_up, other = _claim(coordinator, first)
        other_down, _ = _claim(coordinator, second)
        assert other.job == 2
        _post(client, second, f"/v1/stages/{other_down}/listen", listen)
        foreign = _post(client, first, f"/v1/stages/{other_up}/peers")[1]
        assert isinstance(foreign, dict)
        stolen = StageToken.from_bytes(bytes.fromhex(foreign["downstream"]["token"]))
    with pytest.raises(ChannelError, match="for job 2"):
        _handshake(stolen, first, second, job=1, task=up.pipeline)
    assert _handshake(token, first, second, job=1, task=up.pipeline).sender == first.address


def _handshake(token: StageToken, sender: RequestSigner, receiver: RequestSigner, *, job: int,
               task: int) -> StageToken:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    with client, peer:
        client.settimeout(10)
        peer.settimeout(10)
        thread = threading.Thread(target=connect_stage, args=(client, DOMAIN, token, sender.stage_key()))
        thread.start()
        try:
            return accept_stage(peer, DOMAIN, coordinator=COORDINATOR, job=job, task=task, stage=0,
                                receiver=receiver.address, spent=set())
        finally:
            thread.join(10)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()  # requests are signed against the real clock

    def __call__(self) -> float:
        return self.now


def test_a_pipeline_that_does_not_form_lapses_and_its_slot_reopens(setup: Setup) -> None:
    clock = Clock()
    engine = connect(f"sqlite:///{setup.tmp / 'c.sqlite'}")
    setup.engines.append(engine)
    coordinator = Coordinator(engine, setup.store, DOMAIN, lease_s=30, key=KEY, clock=clock)
    coordinator.add_job(_job(2, rounds=1, exposure=10000), setup.items, setup.validation)
    first = _signer(21)
    lease, task = _claim(coordinator, first)
    clock.now += 20
    coordinator.heartbeat(first.address, lease)  # alive, but no second stage ever claims
    clock.now += 15
    coordinator.expire_leases()
    with pytest.raises(RequestError, match="released"):
        coordinator.heartbeat(first.address, lease)
    # Waiting was not the worker's fault: it is not slashed, and the task takes a new pipeline.
    lease2, task2 = _claim(coordinator, _signer(23))
    assert task2.pipeline != task.pipeline and task2.stage.index == 0
    again, task3 = _claim(coordinator, first)
    assert task3.pipeline == task2.pipeline and task3.stage.index == 1
    # A stage that goes silent lapses its pipeline: it is slashed, its neighbour released.
    clock.now += 31
    coordinator.expire_leases()
    from sqlalchemy import select

    from databright.compute._schema import pipelines, slashes

    with engine.connect() as conn:
        states = dict(conn.execute(select(pipelines.c.id, pipelines.c.failure)).all())
        slashed = conn.execute(select(slashes.c.worker)).scalars().all()
    assert "not every stage was claimed" in str(states[task.pipeline])
    assert "went silent" in str(states[task2.pipeline])
    assert len(slashed) == 2  # both stages of the second pipeline, none of the first


class JunkRun(StageRun):
    """A hostile stage: after a valid handshake it announces a frame far over the size limit."""

    def _train(self, stage: Stage, up: socket.socket | None, down: socket.socket | None,
               batches: object) -> StageTimes:
        sock = down if down is not None else up
        assert sock is not None
        shape = self.task.stage.output_shape if down is not None else self.task.stage.input_shape
        kind = 2 if down is not None else 3  # an activation downstream, a gradient upstream
        sock.sendall(struct.pack("<4sBBBBQQ", b"DBST", 1, kind, 1, 1 + len(shape), 0, 2**40)
                     + struct.pack(f"<{1 + len(shape)}I", self.task.batch, *shape))
        while sock.recv(1 << 16):  # until the honest stage hangs up
            pass
        return StageTimes()


class JunkWorker(Worker):
    stage_run = JunkRun


def test_a_stage_sending_oversized_frames_ends_its_pipeline_and_the_job_still_finishes(setup: Setup) -> None:
    coordinator = setup.coordinator("c.sqlite")
    coordinator.add_job(_job(2, rounds=1, exposure=5000), setup.items, setup.validation)
    with TestClient(coordinator_app(coordinator)) as client:
        hostile = JunkWorker(client, _signer(60), FINGERPRINT, 1)
        workers = [hostile, *_workers(client, 5)]
        run_workers(workers, idle_s=0.05, until_idle=True)
        job = client.get("/v1/status/jobs/1").json()
    assert job["status"] == "done"
    report = json.loads(setup.store.get(str(job["report"])))
    failed = [p for p in report["split"]["pipelines"] if p["status"] == "failed"]
    assert len(failed) == 1 and "exceeds the" in failed[0]["failure"], failed
    assert hostile.signer.address in {s["worker"] for s in failed[0]["stages"]}
    assert hostile.stage_errors and "is released" in hostile.stage_errors[0]  # its piece is refused
    # Neither stage of the broken pipeline is paid; the job was finished by other pipelines.
    assert all(s["verdict"] is None for s in failed[0]["stages"])


class PerturbingStage(Worker):
    """Returns its piece with one weight nudged: only a replica of that piece can tell."""

    def _call(self, method: str, path: str, body: bytes = b"", extra: Mapping[str, str] | None = None) -> Response:
        if path.endswith("/result"):
            state = load_checkpoint(body)
            first = sorted(state)[0]
            state[first] = state[first] + 1e-3
            body = save_checkpoint(state)
        return super()._call(method, path, body, extra)


def test_three_replicated_pipelines_catch_a_cheating_piece(setup: Setup) -> None:
    coordinator = setup.coordinator("c.sqlite")
    job = JobConfig(1, 1, SPEC, rounds=1, local_steps=3, redundancy=3, max_exposure_bps=10000, budget=10**6,
                    settings=JobSettings("tmr", split=2))
    coordinator.add_job(job, setup.items, setup.validation)
    with TestClient(coordinator_app(coordinator)) as client:
        cheat = PerturbingStage(client, _signer(70), FINGERPRINT, 1)
        workers = [cheat, *_workers(client, 11)]
        run_workers(workers, idle_s=0.05, until_idle=True)
        done = client.get("/v1/status/jobs/1").json()
        group = {w["address"]: w["group"] for w in client.get("/v1/status/workers").json()}
    assert done["status"] == "done"
    report = json.loads(setup.store.get(str(done["report"])))
    pipelines = report["split"]["pipelines"]
    submitted = [p for p in pipelines if p["status"] == "submitted"]
    # Three pipelines from three groups disagree (one piece differs), three more are run, the majority wins.
    assert len(submitted) == 6
    first_three = sorted(submitted, key=lambda p: p["pipeline"])[:3]
    groups = [{group[s["worker"]] for s in p["stages"]} for p in first_three]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 3
    verdicts = {(s["worker"], s["verdict"]) for p in submitted for s in p["stages"]}
    assert (cheat.signer.address, "odd") in verdicts
    assert [v for v in verdicts if v[1] == "odd"] == [(cheat.signer.address, "odd")]  # its honest partner is paid
    assert [s["worker"] for s in report["slashes"]] == [cheat.signer.address]
    assert "piece" in report["slashes"][0]["reason"]
