"""The off-chain index on a real PostgreSQL server gives what SQLite gives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from databright.chain import DatasetParams
from databright.index import Index, Loaders, Page
from databright.storage import LocalBlobStore, Manifest, ManifestItem, cid_from_digest, digest_of_cid
from tests._model_history import deploy_model_market, model_history, model_snapshot
from tests._servers import Postgres
from tests.integration.conftest import Backend


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        yield server
    finally:
        server.close()


def _history(b: Backend, store: LocalBlobStore) -> None:
    m = b.market
    dataset_id = m.create_dataset(
        b.accounts[0], DatasetParams(metadata_digest=b"\x05" * 32, initial_shares=2**70, proposal_bond=10**18,
                                    min_accept_delay=0)
    )
    for k in range(3):
        manifest = Manifest([ManifestItem(store.put(f"{k}-{i}".encode()), str(i)) for i in range(4)])
        manifest.save(store)
        pid = m.propose(b.accounts[1], dataset_id, manifest.root, digest_of_cid(manifest.cid), 4)
        m.vote(b.accounts[0], pid, k != 1)
        m.finalize(b.accounts[0], pid)
    m.deposit(b.accounts[2], dataset_id, 3 * 10**18)
    m.withdraw(b.accounts[0], dataset_id)


def _loaders(store: LocalBlobStore) -> Loaders:
    def manifest(cid: str) -> list[tuple[str, str, dict[str, object]]] | None:
        return [(i.cid, i.label, dict(i.metadata)) for i in Manifest.from_bytes(store.get(cid))]

    return Loaders(cid_from_digest, manifest, lambda cid: None)


def _snapshot(index: Index) -> dict[str, object]:
    return {
        "datasets": [(d.dataset_id, d.total_supply, d.item_count, d.revenue_total, d.revenue_withdrawn)
                     for d in index.datasets()],
        "proposals": [(p.proposal_id, p.status, p.yes_votes, p.no_votes, p.shares_minted, p.manifest_available)
                      for p in index.proposals()],
        "holders": [(h.holder, h.balance, h.withdrawn) for h in index.holders(1)],
        "items": [(i.cid, i.label, i.accepted) for i in index.items(1, accepted=None)],
        # keyset pages: the same rows and cursors on both databases, forwards and back
        "item pages": _walk(lambda c: index.items_page(1, cursor=c, limit=3), lambda i: (i.cid, i.position)),
        "holder pages": _walk(lambda c: index.holders_page(1, cursor=c, limit=1), lambda h: (h.holder, h.balance)),
        "entries": _walk(lambda c: index.entries_page(1, cursor=c, limit=1), lambda p: p.proposal_id),
        "counters": (sorted(index.label_counts(1)), index.proposal_count(1, "rejected"), index.dataset(1).holder_count),
    }


def _walk(fetch: Callable[[str | None], Page[Any]], key: Callable[[Any], object]) -> list[object]:
    seen: list[object] = []
    page = fetch(None)
    while True:
        seen.append([key(r) for r in page.rows])
        if page.next_cursor is None:
            break
        page = fetch(page.next_cursor)
    while page.prev_cursor is not None:
        page = fetch(page.prev_cursor)
        seen.append([key(r) for r in page.rows])
    return seen


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_postgres_index_matches_sqlite(backend: Backend, postgres: Postgres, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    _history(backend, store)
    loaders = _loaders(store)
    snapshots = []
    for url in (f"sqlite:///{tmp_path / 'index.sqlite'}", postgres.url):
        index = Index(url)
        index.bind(backend.ledger.chain_id, backend.market.address, 0)
        index.sync(backend.market, loaders, to_block=5)  # in two steps: the cursor resumes
        index.sync(backend.market, loaders)
        snapshots.append(_snapshot(index))
        assert index.sync(backend.market, loaders) == 0  # nothing applied twice
        index.close()
    assert snapshots[0] == snapshots[1]
    assert snapshots[0]["datasets"][0][1] == 2**70 + 80  # type: ignore[index]


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_postgres_mirrors_the_model_market_as_sqlite_does(backend: Backend, postgres: Postgres, tmp_path: Path,
                                                          contract_cache: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    models = deploy_model_market(backend.ledger, backend.accounts[0], backend.market.address, contract_cache)
    history = model_history(backend.market, models, backend.accounts, store, backend.advance)
    loaders = _loaders(store)
    snapshots = []
    for url in (f"sqlite:///{tmp_path / 'index.sqlite'}", postgres.url):
        index = Index(url)
        index.bind(backend.ledger.chain_id, backend.market.address, 0, model_market=models.address)
        index.sync(backend.market, loaders, to_block=8, models=models)
        index.sync(backend.market, loaders, models=models)
        snapshots.append(model_snapshot(index, history))
        index.close()
    assert snapshots[0] == snapshots[1]
    assert snapshots[0]["revenue"]["royalty"] == 20 * 10**12  # type: ignore[index]
