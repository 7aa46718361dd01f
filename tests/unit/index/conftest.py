"""An embedded chain with DataMarket, a blob store and index helpers, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from databright.chain import DataMarket, DatasetParams, Ledger, compile_contract, deploy
from databright.chain.node import EmbeddedNode, EmbeddedProvider, Genesis
from databright.index import Index, ItemRecord, Loaders
from databright.storage import LocalBlobStore, Manifest, ManifestItem, cid_from_digest, digest_of_cid

ACCOUNTS = [Account.from_key(bytes([i + 1]) * 32) for i in range(4)]


@dataclass
class World:
    node: EmbeddedNode
    market: DataMarket
    store: LocalBlobStore
    deploy_tx: str
    deploy_block: int
    hidden: set[str] = field(default_factory=set)  # CIDs the loaders pretend are unreachable

    @property
    def ledger(self) -> Ledger:
        return self.market.ledger

    def loaders(self) -> Loaders:
        def manifest(cid: str) -> list[ItemRecord] | None:
            if cid in self.hidden or not self.store.has(cid):
                return None
            return [(i.cid, i.label, dict(i.metadata)) for i in Manifest.from_bytes(self.store.get(cid))]

        return Loaders(cid_from_digest, manifest, lambda cid: None)

    def index(self, path: Path) -> Index:
        index = Index(f"sqlite:///{path}")
        index.bind(self.ledger.chain_id, self.market.address, self.deploy_block, deploy_tx=self.deploy_tx,
                   ledger=self.ledger)
        return index

    def dataset(self, digest: bytes = b"\x05" * 32) -> int:
        return self.market.create_dataset(
            ACCOUNTS[0], DatasetParams(metadata_digest=digest, initial_shares=10**6, proposal_bond=10**16)
        )

    def manifest(self, *names: str, save: bool = True) -> Manifest:
        manifest = Manifest([ManifestItem(self.store.put(n.encode()), n) for n in names])
        if save:
            manifest.save(self.store)
        return manifest

    def propose(self, dataset_id: int, manifest: Manifest) -> int:
        return self.market.propose(ACCOUNTS[1], dataset_id, manifest.root, digest_of_cid(manifest.cid),
                                   len(manifest))

    def accept(self, proposal_id: int) -> None:
        self.market.vote(ACCOUNTS[0], proposal_id, True)
        self.market.finalize(ACCOUNTS[0], proposal_id)


def open_world(chain_file: Path, blobs: Path, cache: Path) -> World:
    genesis = Genesis(chain_id=31415, alloc={a.address: 1_000 * 10**18 for a in ACCOUNTS})
    node = EmbeddedNode(chain_file, genesis)
    ledger = Ledger(Web3(EmbeddedProvider(node)))
    deployment = deploy(ledger, ACCOUNTS[0], cache)
    market = DataMarket(ledger, deployment.address("DataMarket"), compile_contract("data_market", cache).abi)
    contract = deployment.contracts["DataMarket"]
    return World(node, market, LocalBlobStore(blobs), str(contract["tx"]), int(contract["block"]))


@pytest.fixture(scope="session")
def contract_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contracts")


@pytest.fixture
def world(tmp_path: Path, contract_cache: Path) -> Iterator[World]:
    w = open_world(tmp_path / "chain.sqlite", tmp_path / "blobs", contract_cache)
    try:
        yield w
    finally:
        w.node.close()
