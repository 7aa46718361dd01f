"""A coordinator killed with kill -9 while it challenges optimistic results resumes them from its database."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from databright.compute import Coordinator, JobSettings, connect
from databright.compute._worker import Worker
from databright.storage import LocalBlobStore
from tests._servers import free_port, stop
from tests.e2e.test_coordinator_crash import _coordinator
from tests.unit.compute.conftest import DOMAIN, FINGERPRINT, Market, table_items


def test_kill_9_mid_verification_resumes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    db = f"sqlite:///{tmp_path / 'coordinator.sqlite'}"
    engine = connect(db)
    market = Market(store, Coordinator(engine, store, DOMAIN), table_items(store, 40), "")
    market.coordinator.add_job(market.job(1, redundancy=1, rounds=2, local_steps=6,
                                          settings=JobSettings("optimistic", snapshot_every=2)), market.items)
    port = free_port()
    process = _coordinator(tmp_path, db, port)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=60) as client:
        workers = [Worker(client, market.signer(), FINGERPRINT, 5) for _ in range(4)]
        for w in workers:
            w.register()
            assert w.step()  # trained, committed, submitted: its challenges are open
        for w in workers[:2]:
            assert w.answer_challenges()
        assert all(w.pending for w in workers[2:])
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process = _coordinator(tmp_path, db, port)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for w in workers:
                w.client = client
            give_up = time.monotonic() + 300
            while any(w.step() for w in workers) or any(w.pending for w in workers):
                assert time.monotonic() < give_up, "the restarted coordinator never decided"
            job = client.get("/v1/status/jobs/1").json()
        assert job["status"] == "done" and job["slashes"] == 0
        s = market.coordinator.settlement(1)
        assert sum(p.tasks for p in s.payments) == 8  # 4 shards x 2 rounds, each verified and paid once
    finally:
        stop(process)
        engine.dispose()
