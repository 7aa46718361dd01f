"""A small table dataset in a blob store, a coordinator over SQLite, and signing workers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from databright.compute import Coordinator, JobConfig, RequestDomain, RequestSigner, SignedRequest, connect
from databright.ml import ModelSpec
from databright.storage import LocalBlobStore, Manifest, ManifestItem, canonical_json

DOMAIN = RequestDomain(1337, "0x" + "c0" * 20)
FINGERPRINT = {"torch": "test", "threads": "1", "isa": "default"}


def table_items(store: LocalBlobStore, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` rows of two features whose label is which side of a line they fall on."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = (float(v) for v in rng.normal(size=2))
        out.append((str(store.put(canonical_json({"a": a, "b": b, "row": i}))), "pos" if a + b > 0 else "neg"))
    return out


SPEC = ModelSpec(kind="mlp", input="table", features=("a", "b"), classes=("neg", "pos"), hidden=(4,),
                 batch_size=0, lr=0.05)


@dataclass
class Market:
    store: LocalBlobStore
    coordinator: Coordinator
    items: list[tuple[str, str]]
    validation: str

    def signer(self) -> RequestSigner:
        return RequestSigner(DOMAIN, os.urandom(32))

    def signed(self, signer: RequestSigner, method: str, path: str, body: bytes = b"") -> SignedRequest:
        return self.coordinator.authenticate(method, path, body, signer.headers(method, path, body))

    def workers(self, n: int, fee: int = 10) -> list[RequestSigner]:
        out = []
        for _ in range(n):
            s = self.signer()
            self.coordinator.register_worker(s.address, FINGERPRINT, fee)
            out.append(s)
        return out

    def job(self, job_id: int = 1, **kw: int) -> JobConfig:
        params = {"rounds": 2, "local_steps": 3, "redundancy": 3, "max_exposure_bps": 2500, "budget": 10**6}
        params.update(kw)
        return JobConfig(job_id, 1, SPEC, **params)


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    store = LocalBlobStore(tmp_path / "blobs")
    items = table_items(store, 40)
    val = Manifest([ManifestItem(cid, label) for cid, label in table_items(store, 20, seed=1)])
    engine = connect(f"sqlite:///{tmp_path / 'coordinator.sqlite'}")
    yield Market(store, Coordinator(engine, store, DOMAIN, lease_s=30), items, str(val.save(store)))
    engine.dispose()


Behaviour = Callable[[bytes], bytes]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
