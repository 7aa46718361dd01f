"""Coordinator shortcuts keep their meaning: rate-limited lease sweeps, candidates ranked in SQL, cached shapes."""

from __future__ import annotations

import time

import pytest
import torch
from sqlalchemy import select

from databright.compute import JobConfig, Task, run_task
from databright.compute._schema import assignments, slashes, workers
from databright.errors import InputError, RequestError
from databright.ml import load_checkpoint, save_checkpoint
from tests.unit.compute.conftest import SPEC, Market


def test_candidates_rank_by_items_unseen_in_their_own_dataset(market: Market) -> None:
    c = market.coordinator
    c.add_job(market.job(1), market.items)
    (w,) = market.workers(1)
    first = c.claim(market.signed(w, "POST", "/v1/claim"))
    assert first is not None
    c.add_job(JobConfig(2, 2, SPEC, 1, 3, 1, 2500, 10**6), market.items)  # same items, another dataset
    c.add_job(market.job(3, redundancy=1), market.items)  # same dataset and shards as job 1
    with c.engine.connect() as conn:
        me = conn.execute(select(workers).where(workers.c.address == w.address)).one()
        ranked = c._candidates(conn, me)
        unseen = [len(c._new_items(conn, row, w.address)) for row in ranked]
    assert [row.new for row in ranked] == unseen
    assert [(row.new, row.job_id, row.idx) for row in ranked] == sorted((row.new, row.job_id, row.idx)
                                                                          for row in ranked)
    assert any(row.job_id == 2 and row.new == len(first.task.shard) for row in ranked)  # dataset 2: all new
    second = c.claim(market.signed(w, "POST", "/v1/claim"))
    assert second is not None and (second.task.job, second.task.index) == (3, first.task.index)


def test_leases_still_expire_when_sweeps_are_rate_limited(market: Market) -> None:
    c = market.coordinator
    c.add_job(market.job(redundancy=1), market.items)
    a, b, d, e = market.workers(4)
    t0 = time.time()
    now = [t0]
    c.clock = lambda: now[0]
    sweeps: list[float] = []
    expire = c.expire_leases

    def counted() -> int:
        sweeps.append(now[0])
        return expire()

    c.expire_leases = counted  # type: ignore[method-assign]

    def claim(signer: object) -> object:
        return c.claim(market.signed(signer, "POST", "/v1/claim"))  # type: ignore[arg-type]

    lease_a = claim(a)
    now[0] = t0 + 0.5
    lease_b = claim(b)
    assert lease_a is not None and lease_b is not None
    assert sweeps == [t0]  # the second claim came within a second of the first sweep
    now[0] = t0 + 30.2  # a's lease is over, b's has 0.3 s left
    claim(d)
    assert sweeps == [t0, t0 + 30.2]
    now[0] = t0 + 30.7  # b's lease is over too, but no sweep is due yet: its heartbeat is refused anyway
    with pytest.raises(RequestError, match="expired"):
        c.heartbeat(b.address, lease_b.id)  # type: ignore[attr-defined]
    assert len(sweeps) == 2
    now[0] = t0 + 31.3
    claim(e)
    assert len(sweeps) == 3
    with c.engine.connect() as conn:
        expired = set(conn.execute(select(assignments.c.worker).where(assignments.c.status == "expired")).scalars())
        slashed = set(conn.execute(select(slashes.c.worker)).scalars())
    assert expired == slashed == {a.address, b.address}


def test_results_are_checked_against_the_round_shapes_every_time(market: Market) -> None:
    c = market.coordinator
    c.add_job(market.job(redundancy=1), market.items)
    a, b = market.workers(2)
    claimed = [c.claim(market.signed(w, "POST", "/v1/claim")) for w in (a, b)]
    leases = [lease for lease in claimed if lease is not None]
    assert len(leases) == 2
    task = leases[0].task
    assert isinstance(task, Task)
    good = run_task(task, market.store.get).state
    wrong = save_checkpoint({k: torch.zeros(v.shape[0] + 1, *v.shape[1:])
                             for k, v in load_checkpoint(good).items()})
    for signer, lease in zip((a, b), leases):  # the second comparison uses the cached shapes
        path = f"/v1/leases/{lease.id}/result"
        with pytest.raises(InputError, match="do not match the task's model"):
            c.submit(market.signed(signer, "POST", path, wrong), lease.id, wrong)
    path = f"/v1/leases/{leases[0].id}/result"
    assert c.submit(market.signed(a, "POST", path, good), leases[0].id, good) == "accepted"
