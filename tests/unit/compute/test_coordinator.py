"""A job end to end through the coordinator: leases, exposure cap, TMR, slashing, settlement."""

from __future__ import annotations

import pickle

import pytest
import torch
from sqlalchemy import func, select

from databright.compute import RequestSigner, Task, run_task
from databright.compute._schema import exposure
from databright.errors import InputError, RequestError
from databright.ml import load_checkpoint, save_checkpoint
from tests.unit.compute.conftest import Market


def work(market: Market, signer: RequestSigner, tamper: str | None = None) -> str | None:
    """One claim → run → submit cycle; ``tamper`` makes the worker byzantine."""
    try:
        lease = market.coordinator.claim(market.signed(signer, "POST", "/v1/claim"))
    except RequestError:  # slashed workers get nothing more
        return None
    if lease is None:
        return None
    if tamper == "nothing":
        return "silent"
    fetch = lambda cid: market.coordinator.blob(signer.address, cid)  # noqa: E731
    body = run_task(lease.task, fetch).state
    if tamper == "perturb":
        state = load_checkpoint(body)
        first = sorted(state)[0]
        state[first] = state[first] + 1e-6
        body = save_checkpoint(state)
    elif tamper == "digest":
        body = save_checkpoint({k: torch.rand(v.shape, generator=torch.Generator().manual_seed(7))
                                for k, v in load_checkpoint(body).items()})
    path = f"/v1/leases/{lease.id}/result"
    return market.coordinator.submit(market.signed(signer, "POST", path, body), lease.id, body)


def drive(market: Market, signers: list[RequestSigner], tamper: dict[str, str] | None = None,
          rounds: int = 50) -> None:
    tamper = tamper or {}
    for _ in range(rounds):
        progressed = False
        for s in signers:
            if work(market, s, tamper.get(s.address)) not in (None, "silent"):
                progressed = True
        if not progressed:
            return


def test_honest_job_with_tmr_completes_and_pays_every_replica(market: Market) -> None:
    c = market.coordinator
    c.add_job(market.job(), market.items, market.validation)
    workers = market.workers(12)
    drive(market, workers)
    s = c.settlement(1)
    assert s.slashes == ()
    # 4 shards x 2 rounds x 3 replicas, every one agreeing.
    assert sum(p.tasks for p in s.payments) == 24 and s.paid == 240


def test_same_job_twice_gives_the_same_checkpoint(market: Market, tmp_path_factory: pytest.TempPathFactory) -> None:
    c = market.coordinator
    c.add_job(market.job(1, redundancy=1), market.items)
    c.add_job(market.job(2, redundancy=1), market.items)
    drive(market, market.workers(4))
    assert c.settlement(1).checkpoint_sha256 == c.settlement(2).checkpoint_sha256


@pytest.mark.parametrize("tamper", ["perturb", "digest", "nothing"])
def test_byzantine_worker_is_caught_slashed_and_the_job_completes_honestly(market: Market, tamper: str) -> None:
    c = market.coordinator
    c.add_job(market.job(1), market.items, market.validation)
    c.add_job(market.job(2), market.items, market.validation)
    honest, *others = market.workers(15)
    cheat = others[0]
    if tamper == "nothing":
        work(market, cheat, tamper)
        c.clock = lambda: __import__("time").time() + 31  # past the 30 s lease
    drive(market, [honest, *others], {cheat.address: tamper})
    c.clock = __import__("time").time
    a, b = c.settlement(1), c.settlement(2)
    assert a.checkpoint_sha256 == b.checkpoint_sha256  # the byzantine result changed nothing
    slashed = {s.worker for s in a.slashes + b.slashes}
    assert slashed == {cheat.address}
    assert cheat.address not in {p.worker for p in a.payments + b.payments}


def test_result_for_another_task_is_slashed(market: Market) -> None:
    c = market.coordinator
    c.add_job(market.job(1), market.items)
    workers = market.workers(15)
    cheat = workers[0]
    lease = c.claim(market.signed(cheat, "POST", "/v1/claim"))
    assert lease is not None
    other = Task(**{**lease.task.__dict__, "index": (lease.task.index + 1) % 4, "shard": lease.task.shard[:1]})
    body = run_task(other, lambda cid: c.store.get(cid)).state  # someone else's result, not this task's
    c.submit(market.signed(cheat, "POST", "/r", body), lease.id, body)
    drive(market, workers[1:])
    assert [s.worker for s in c.settlement(1).slashes] == [cheat.address]


def test_no_worker_ever_exceeds_the_cap(market: Market) -> None:
    c = market.coordinator
    for job_id in (1, 2, 3):
        c.add_job(market.job(job_id, redundancy=1), market.items)
    greedy = market.workers(1)[0]
    leases = [c.claim(market.signed(greedy, "POST", "/v1/claim")) for _ in range(12)]
    assert sum(lease is not None for lease in leases) == 3  # one shard per job, the same shard each time
    with c.engine.connect() as conn:
        seen = conn.execute(select(func.count()).select_from(exposure).where(exposure.c.worker == greedy.address))
        assert seen.scalar_one() <= 10  # 25% of 40 items
    for cid, _ in market.items:
        try:
            c.blob(greedy.address, cid)
        except RequestError:
            continue
    with pytest.raises(RequestError):
        c.blob(greedy.address, next(cid for cid, _ in market.items
                                    if cid not in {x for lease in leases if lease for x, _ in lease.task.shard}))


def test_too_few_workers_waits_and_says_why(market: Market) -> None:
    c = market.coordinator
    c.add_job(market.job(), market.items)
    market.workers(5)
    reason = c.waiting(1)
    assert reason is not None and "4 shards need 4 distinct workers in each of 3" in reason


def test_replay_and_pickle_are_refused(market: Market) -> None:
    c = market.coordinator
    c.add_job(market.job(redundancy=1), market.items)
    (w,) = market.workers(1)
    headers = w.headers("POST", "/v1/claim")
    lease = c.claim(c.authenticate("POST", "/v1/claim", b"", headers))
    assert lease is not None
    with pytest.raises(RequestError, match="replayed"):
        c.authenticate("POST", "/v1/claim", b"", headers)
    payload = pickle.dumps({"weight": [1.0]})
    with pytest.raises(InputError, match="safetensors"):
        c.submit(market.signed(w, "POST", "/r", payload), lease.id, payload)
