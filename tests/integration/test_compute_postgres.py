"""Two coordinators sharing one PostgreSQL job table never lease one replica slot twice."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from databright.compute import Coordinator, RequestSigner, connect
from databright.compute._schema import assignments
from databright.storage import LocalBlobStore
from tests._servers import Postgres
from tests.unit.compute.conftest import DOMAIN, FINGERPRINT, SPEC, table_items
from databright.compute import JobConfig


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        yield server
    finally:
        server.close()


def test_two_coordinators_share_leases_without_double_assignment(postgres: Postgres, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    items = table_items(store, 100)
    a_engine, b_engine = connect(postgres.url), connect(postgres.url)
    a, b = Coordinator(a_engine, store, DOMAIN), Coordinator(b_engine, store, DOMAIN)
    for job_id in range(1, 6):  # 5 jobs x 20 shards, redundancy 1: 100 slots
        a.add_job(JobConfig(job_id, 1, SPEC, rounds=1, local_steps=1, redundancy=1, max_exposure_bps=500,
                            budget=10**9), items)
    assert not b.add_job(JobConfig(1, 1, SPEC, rounds=1, local_steps=1, redundancy=1, budget=10**9), items)
    signers = [RequestSigner(DOMAIN, os.urandom(32)) for _ in range(40)]
    for s in signers:
        a.register_worker(s.address, FINGERPRINT, 1)
    leases: list[int] = []
    lock = threading.Lock()

    def claim_all(coordinator: Coordinator, mine: list[RequestSigner]) -> None:
        for _ in range(5):
            for s in mine:
                request = coordinator.authenticate("POST", "/v1/claim", b"", s.headers("POST", "/v1/claim"))
                lease = coordinator.claim(request)
                if lease is not None:
                    with lock:
                        leases.append(lease.id)

    threads = [threading.Thread(target=claim_all, args=(c, signers[i::4]))
               for i, c in enumerate([a, b, a, b])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with a_engine.connect() as conn:
        per_task = Counter(conn.execute(select(assignments.c.task_id)).scalars())
    assert per_task and max(per_task.values()) == 1  # no slot leased twice
    assert len(per_task) == 100 == len(leases)  # every slot leased: 40 workers, one shard each, 5 jobs
    a_engine.dispose()
    b_engine.dispose()
