"""A coordinator killed with kill -9 resumes from its database: nothing accepted is lost, nothing paid twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from databright.compute import Coordinator, connect
from databright.compute._worker import Worker
from databright.storage import LocalBlobStore
from tests._servers import ROOT, free_port, stop
from tests.unit.compute.conftest import DOMAIN, FINGERPRINT, Market, table_items


def _coordinator(home: Path, db: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/databright"), "--home", str(home), "--store", str(home / "blobs"), "coordinator",
         "--serve-only", "--db", db, "--port", str(port), "--chain-id", str(DOMAIN.chain_id),
         "--market", DOMAIN.contract, "--interval", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/status/jobs", timeout=1)
            return process
        except httpx.HTTPError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
    raise RuntimeError("coordinator did not start")


def test_kill_9_resume(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    db = f"sqlite:///{tmp_path / 'coordinator.sqlite'}"
    engine = connect(db)
    market = Market(store, Coordinator(engine, store, DOMAIN), table_items(store, 40), "")
    market.coordinator.add_job(market.job(1, redundancy=1, rounds=3), market.items)
    port = free_port()
    process = _coordinator(tmp_path, db, port)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=30) as client:
        workers = [Worker(client, market.signer(), FINGERPRINT, 5) for _ in range(4)]
        for w in workers:
            w.register()
        for w in workers[:3]:
            assert w.step()
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process = _coordinator(tmp_path, db, port)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for w in workers:
                w.client = client
            while any(w.step() for w in workers):
                pass
            job = client.get("/v1/status/jobs/1").json()
        assert job["status"] == "done"
        s = market.coordinator.settlement(1)
        assert sum(p.tasks for p in s.payments) == 12  # 4 shards x 3 rounds, each paid once
    finally:
        stop(process)
        engine.dispose()
