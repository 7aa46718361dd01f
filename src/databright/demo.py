"""The end-to-end demo: a digits dataset grown by eight contributors.

An initiator seeds a dataset with 10% of scikit-learn's handwritten digits (as
8x8 PNG files); eight contributors propose batches — six clean, one with
flipped labels, one repeating items already accepted; shareholders vote by the
policy below; proposals are finalized; a data scientist pays a training fee and
every holder withdraws their part.

Voting policy of the demo's shareholders: vote no when a batch repeats any
accepted item (the index flags exact duplicates by CID), or when a
one-nearest-neighbour classifier fitted on the accepted items disagrees with
more than 30% of the batch's labels; otherwise vote yes. Shareholders vote in
order of their shares until the proposal is decided.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from databright.chain import DatasetParams
from databright.config import Home
from databright.errors import ConfigError
from databright.operations import DatasetMetadata, create_dataset, load_batch, propose_batch
from databright.workspace import Workspace

__all__ = ["DemoResult", "run_demo", "write_png"]

SEED_FRACTION = 0.10
BATCH_SIZE = 100
CONTRIBUTORS = 8
DISAGREEMENT_LIMIT = 0.30


def write_png(pixels: np.ndarray) -> bytes:
    """Encode a 2-D uint8 array as a greyscale PNG (no imaging library needed)."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].astype(np.uint8).tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def read_png_pixels(data: bytes) -> np.ndarray:
    """Decode a PNG written by ``write_png`` back to its pixels."""
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    rows = [raw[r * (width + 1) + 1 : (r + 1) * (width + 1)] for r in range(height)]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(height, width)


def _write_batch(folder: Path, images: np.ndarray, labels: list[str], offset: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["file,label"]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"digit-{offset + i:05d}.png"
        (folder / name).write_bytes(write_png(np.clip(image * 16, 0, 255).astype(np.uint8)))
        lines.append(f"{name},{label}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


@dataclass
class DemoProposal:
    proposal_id: int
    contributor: str
    kind: str
    items: int
    votes: list[tuple[str, bool, int, str]] = field(default_factory=list)
    outcome: str = ""
    shares: int = 0


@dataclass
class DemoResult:
    home: Path
    dataset_id: int
    proposals: list[DemoProposal]
    holders: list[dict[str, Any]]
    revenue_wei: int


class _Reviewer:
    """The demo's voting policy (see the module docstring)."""

    def __init__(self, ws: Workspace, dataset_id: int) -> None:
        self.ws = ws
        self.dataset_id = dataset_id

    def _pixels(self, cid: str) -> np.ndarray:
        return read_png_pixels(self.ws.store.get(cid)).astype(np.float64).ravel()

    def review(self, proposal_id: int) -> tuple[bool, str]:
        from sklearn.neighbors import KNeighborsClassifier

        proposal = self.ws.index.proposal(proposal_id)
        if proposal.duplicate_count:
            return False, f"{proposal.duplicate_count} duplicate items"
        accepted = self.ws.index.items(self.dataset_id, accepted=True)
        batch = self.ws.index.items(self.dataset_id, accepted=None, proposal_id=proposal_id)
        model = KNeighborsClassifier(n_neighbors=1).fit(
            np.stack([self._pixels(i.cid) for i in accepted]), [i.label for i in accepted]
        )
        predicted = model.predict(np.stack([self._pixels(i.cid) for i in batch]))
        disagreement = float(np.mean([p != i.label for p, i in zip(predicted, batch, strict=True)]))
        if disagreement > DISAGREEMENT_LIMIT:
            return False, f"labels disagree with neighbours on {disagreement:.0%}"
        return True, f"labels agree with neighbours on {1 - disagreement:.0%}"


def run_demo(home: Path, progress: Callable[[str], None] = lambda _: None) -> DemoResult:
    from sklearn.datasets import load_digits

    home = Path(home).expanduser()
    if not Home(home).exists():
        from databright.chain import Keystore
        from databright.chain.node import Genesis
        from databright.workspace import DEV_PASSWORD

        progress("initialising the home directory and 10 dev accounts")
        h = Home(home)
        keystore = Keystore(h.keystore)
        accounts = [keystore.new(f"dev{i}", DEV_PASSWORD) for i in range(CONTRIBUTORS + 2)]
        h.chain_dir.mkdir(parents=True, exist_ok=True)
        Genesis(chain_id=31415, alloc={a.address: 10_000 * 10**18 for a in accounts}).save(h.genesis_file)
        h.write_config({"version": 1, "default_account": "dev0"})
    ws = Workspace(home)
    try:
        return _run(ws, load_digits, progress)
    finally:
        ws.close()


def _run(ws: Workspace, load_digits: Callable[..., Any], progress: Callable[[str], None]) -> DemoResult:
    from databright.chain import deploy, load_deployment

    names = [a.name for a in ws.keystore.list()]
    needed = [f"dev{i}" for i in range(CONTRIBUTORS + 2)]
    if missing := [n for n in needed if n not in names]:
        raise ConfigError(f"the demo needs accounts {', '.join(missing)} in {ws.home.root}")
    initiator = ws.signer("dev0")
    if load_deployment(ws.home.deployments, ws.ledger.chain_id) is None:
        progress("deploying DataMarket")
        deploy(ws.ledger, initiator, ws.home.cache).save(ws.home.deployments)

    digits = load_digits()
    rng = np.random.default_rng(7)
    order = rng.permutation(len(digits.target))
    images, targets = digits.images[order], [str(t) for t in digits.target[order]]
    seed_n = int(len(order) * SEED_FRACTION)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed_folder = _write_batch(work / "seed", images[:seed_n], targets[:seed_n], 0)
        progress(f"dev0 creates the digits dataset, seeded with {seed_n} images")
        params = DatasetParams(
            metadata_digest=b"\0" * 32,
            initial_shares=seed_n,
            quorum_bps=2000,
            approval_bps=5000,
            voting_period=3600,
            proposal_bond=10**17,
            base_reward_per_item=10,
            max_reward_per_proposal=5_000,
            training_fee=10**18,
        )
        metadata = DatasetMetadata(
            "digits",
            "Handwritten digits, 8x8 greyscale PNG (scikit-learn's copy of the UCI set).",
            "files",
            tuple(str(i) for i in range(10)),
            "CC-BY-4.0",
        )
        dataset_id, _ = create_dataset(ws, initiator, metadata, params, seed=load_batch(ws, seed_folder))

        reviewer = _Reviewer(ws, dataset_id)
        proposals: list[DemoProposal] = []
        start = seed_n
        for k in range(CONTRIBUTORS):
            name = f"dev{k + 1}"
            signer = ws.signer(name)
            kind = {2: "flipped labels", 5: "repeats accepted items"}.get(k, "clean")
            if kind == "repeats accepted items":
                take = rng.choice(seed_n, size=BATCH_SIZE // 2, replace=False)
                batch_images, batch_labels = images[take], [targets[i] for i in take]
            else:
                batch_images = images[start : start + BATCH_SIZE]
                batch_labels = targets[start : start + BATCH_SIZE]
                if kind == "flipped labels":
                    batch_labels = [str((int(t) + 1 + rng.integers(9)) % 10) for t in batch_labels]
                start += BATCH_SIZE
            folder = _write_batch(work / name, batch_images, batch_labels, start)
            batch = load_batch(ws, folder)
            proposal_id, _ = propose_batch(ws, signer, dataset_id, batch, allow_duplicates=True)
            progress(f"{name} proposes {batch.size} items ({kind}) as proposal {proposal_id}")
            record = DemoProposal(proposal_id, name, kind, batch.size)
            _vote(ws, reviewer, dataset_id, record, names)
            proposals.append(record)

        progress("a data scientist (dev9) pays a 1 ETH training fee to the dataset")
        payer = ws.signer(f"dev{CONTRIBUTORS + 1}")
        ws.market.deposit(payer, dataset_id, 10**18)
        ws.sync()
        holders = _withdraw_all(ws, dataset_id, names)
        revenue = ws.index.dataset(dataset_id).revenue_total
    return DemoResult(ws.home.root, dataset_id, proposals, holders, revenue)


def _vote(ws: Workspace, reviewer: _Reviewer, dataset_id: int, record: DemoProposal, names: list[str]) -> None:
    address_to_name = {ws.address_of(n): n for n in names}
    support, reason = reviewer.review(record.proposal_id)
    voters = sorted(ws.index.holders(dataset_id), key=lambda h: -h.balance)
    supply = ws.market.snapshot_supply(record.proposal_id)
    yes = no = 0
    for holder in voters:
        if 2 * yes > supply or 2 * no > supply:
            break
        name = address_to_name.get(holder.holder)
        if name is None:
            continue
        weight = ws.market.voting_power(record.proposal_id, holder.holder)
        if weight == 0:
            continue
        ws.market.vote(ws.signer(name), record.proposal_id, support)
        yes, no = (yes + weight, no) if support else (yes, no + weight)
        record.votes.append((name, support, weight, reason))
    if not (2 * yes > supply or 2 * no > supply):
        # Not decided early: let the voting period pass on the dev chain.
        ws.ledger.w3.provider.make_request("evm_increaseTime", [3601])  # type: ignore[arg-type]
        ws.ledger.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    ws.market.finalize(ws.signer("dev0"), record.proposal_id)
    ws.sync()
    row = ws.index.proposal(record.proposal_id)
    record.outcome, record.shares = row.status, row.shares_minted


def _withdraw_all(ws: Workspace, dataset_id: int, names: list[str]) -> list[dict[str, Any]]:
    address_to_name = {ws.address_of(n): n for n in names}
    rows = []
    supply = ws.index.dataset(dataset_id).total_supply
    for holder in ws.index.holders(dataset_id):
        name = address_to_name.get(holder.holder, holder.holder)
        amount = ws.market.withdrawable(dataset_id, holder.holder)
        if amount and name in names:
            ws.market.withdraw(ws.signer(name), dataset_id)
        rows.append({"name": name, "address": holder.holder, "shares": holder.balance,
                     "fraction": holder.balance / supply if supply else 0.0, "withdrawn_wei": amount})
    ws.sync()
    return rows


