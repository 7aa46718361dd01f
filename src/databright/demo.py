"""The end-to-end demo: a digits dataset grown by eight contributors.

An initiator (dev0) creates a dataset from scikit-learn's handwritten digits as
8x8 PNG files, seeding it with 10% of them and publishing a held-out validation
split; dev9 is its evaluator. Eight contributors (dev1-dev8) propose batches of
100 images — six clean, one with flipped labels (dev3), one repeating 50 items
already accepted (dev6). The evaluator values every proposal before the vote
(leave-one-out accuracy gain of the best model, KNN-Shapley, duplicates,
suspected mislabels) and posts value, shares and report on-chain; shareholders
vote; proposals are finalized. Then the model market: a data scientist (dev10)
trains a digits model on the accepted items and registers it, paying the
training fee; the evaluator verifies its score; a user (dev11) opens a payment
channel and buys 200 predictions from the model's prediction server over
loopback, signing a voucher per request; the owner redeems, and each
shareholder's withdrawable revenue grows by their part of the royalty. Every
holder then withdraws. A report with plots is written to the home directory.

Voting policy of the demo's shareholders: vote no when the evaluation's gain is
below -0.5 accuracy points (a gain that small is within the noise of the
estimate), when the batch repeats any accepted item, or when more than 20% of
its items are suspected mislabels; otherwise vote yes. Shareholders vote in
order of their shares until the proposal is decided.
"""

from __future__ import annotations

import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from databright.chain import DatasetParams
from databright.config import Home
from databright.demo_compute import ComputeRound, compute_round
from databright.demo_market import PRICE, ROYALTY_BPS, ModelSale, sell_predictions
from databright.errors import ChainError, ConfigError
from databright.operations import DatasetMetadata, create_dataset, load_batch, propose_batch
from databright.workspace import Workspace

__all__ = ["DemoResult", "ModelSale", "run_demo", "write_png", "write_report"]

SEED_FRACTION = 0.10
BATCH_SIZE = 100
CONTRIBUTORS = 8
MISLABEL_LIMIT = 0.20
GAIN_FLOOR = -0.005
VALIDATION_ITEMS = 600
ACCOUNTS = CONTRIBUTORS + 4  # dev0 initiator, dev1-dev8 contributors, dev9 evaluator, dev10 data scientist, dev11 user


def write_png(pixels: np.ndarray) -> bytes:
    """Encode a 2-D uint8 array as a greyscale PNG (no imaging library needed)."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].astype(np.uint8).tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


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
    accepted_before: int
    gain: float = 0.0
    knn_sum: float = 0.0
    duplicates: int = 0
    mislabels: int = 0
    policy_shares: int = 0
    report_cid: str = ""
    seeds: tuple[int, ...] = ()
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
    report: Path
    latency: float
    sale: ModelSale | None = None
    compute: ComputeRound | None = None


def _review(evaluation: Any) -> tuple[bool, str]:
    """The demo's voting policy (see the module docstring)."""
    signals = evaluation.signals
    items = len(signals.knn_values)
    if evaluation.gain < GAIN_FLOOR:
        return False, f"gain {evaluation.gain * 100:+.2f} points"
    if signals.exact_duplicates:
        return False, f"{len(signals.exact_duplicates)} duplicate items"
    if len(signals.suspected_mislabels) > MISLABEL_LIMIT * items:
        return False, f"{len(signals.suspected_mislabels)} suspected mislabels"
    return True, f"gain {evaluation.gain * 100:+.2f} points"


def _init_home(home: Path, progress: Callable[[str], None]) -> None:
    from databright.chain import Keystore
    from databright.chain.node import Genesis
    from databright.workspace import DEV_PASSWORD

    progress(f"initialising {home} with {ACCOUNTS} dev accounts")
    h = Home(home)
    keystore = Keystore(h.keystore)
    accounts = [keystore.new(f"dev{i}", DEV_PASSWORD) for i in range(ACCOUNTS)]
    h.chain_dir.mkdir(parents=True, exist_ok=True)
    Genesis(chain_id=31415, alloc={a.address: 10_000 * 10**18 for a in accounts}).save(h.genesis_file)
    h.write_config({"version": 1, "default_account": "dev0"})


def _ensure_accounts(ws: Workspace, progress: Callable[[str], None]) -> None:
    """A home made by ``databright init`` has dev0-dev9: add and fund what the demo needs."""
    from databright.workspace import DEV_PASSWORD

    names = {a.name for a in ws.keystore.list()}
    funder = ws.signer("dev0")
    for i in range(ACCOUNTS):
        if f"dev{i}" not in names:
            progress(f"creating dev{i}, funded with 100 ETH by dev0")
            account = ws.keystore.new(f"dev{i}", DEV_PASSWORD)
            ws.ledger.transact(funder, to=account.address, value=100 * 10**18, gas=21_000)


def run_demo(home: Path, progress: Callable[[str], None] = lambda _: None) -> DemoResult:
    home = Path(home).expanduser()
    if not Home(home).exists():
        _init_home(home, progress)
    ws = Workspace(home)
    try:
        return _run(ws, progress)
    finally:
        ws.close()


def _run(ws: Workspace, progress: Callable[[str], None]) -> DemoResult:
    from sklearn.datasets import load_digits

    from databright.chain import add_compute_market, add_model_market, deploy, load_deployment
    from databright.evaluator import Evaluator
    from databright.operations import evaluation_metadata

    if "dev0" not in {a.name for a in ws.keystore.list()}:
        raise ConfigError(f"the demo needs the dev accounts of 'databright init' in {ws.home.root}")
    _ensure_accounts(ws, progress)
    initiator, evaluator_account = ws.signer("dev0"), ws.signer(f"dev{CONTRIBUTORS + 1}")
    deployment = load_deployment(ws.home.deployments, ws.ledger.chain_id)
    if deployment is None:
        progress("deploying DataMarket and ModelMarket")
        deploy(ws.ledger, initiator, ws.home.cache).save(ws.home.deployments)
    else:  # a demo home from before the model or the compute market
        if "ModelMarket" not in deployment.contracts:
            progress("deploying ModelMarket")
            deployment = add_model_market(ws.ledger, initiator, deployment, ws.home.cache)
        if "ComputeMarket" not in deployment.contracts:
            progress("deploying ComputeMarket")
            deployment = add_compute_market(ws.ledger, initiator, deployment, ws.home.cache)
        deployment.save(ws.home.deployments)

    digits = load_digits()
    rng = np.random.default_rng(7)
    order = rng.permutation(len(digits.target))
    images, targets = digits.images[order], [str(t) for t in digits.target[order]]
    seed_n = int(len(order) * SEED_FRACTION)
    held_out = slice(len(order) - VALIDATION_ITEMS, len(order))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = load_batch(ws, _write_batch(work / "seed", images[:seed_n], targets[:seed_n], 0))
        validation = load_batch(ws, _write_batch(work / "validation", images[held_out], targets[held_out], 90_000))
        progress(f"dev0 creates the digits dataset: {seed_n} seed images, {VALIDATION_ITEMS} held out "
                 f"for validation, evaluator dev{CONTRIBUTORS + 1}")
        params = DatasetParams(
            metadata_digest=b"\0" * 32,
            initial_shares=seed_n,
            quorum_bps=2000,
            approval_bps=5000,
            voting_period=3600,
            proposal_bond=10**17,
            base_reward_per_item=10,
            max_reward_per_proposal=5_000,
            evaluation_required=True,
            training_fee=10**18,
            evaluator=evaluator_account.address,
            # The demo shows diminishing returns: each proposal gets what the
            # policy awards, without the default cap of 10% of the supply per
            # voting period (which would flatten the later rewards).
            max_mint_bps=10_000,
        )
        metadata = DatasetMetadata(
            "digits",
            "Handwritten digits, 8x8 greyscale PNG (scikit-learn's copy of the UCI set).",
            "files",
            tuple(str(i) for i in range(10)),
            "CC-BY-4.0",
        )
        metadata = evaluation_metadata(ws, metadata, validation, seed, {"half_life_items": 200})
        dataset_id, _ = create_dataset(ws, initiator, metadata, params, seed=seed)
        evaluator = Evaluator(ws, evaluator_account)
        evaluator.ensure_checkpoint(dataset_id)

        proposals: list[DemoProposal] = []
        latencies: list[float] = []
        start = seed_n
        names = [f"dev{i}" for i in range(ACCOUNTS)]
        for k in range(CONTRIBUTORS):
            name = f"dev{k + 1}"
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
            batch = load_batch(ws, _write_batch(work / name, batch_images, batch_labels, start))
            proposal_id, _ = propose_batch(ws, ws.signer(name), dataset_id, batch, allow_duplicates=True)
            record = DemoProposal(proposal_id, name, kind, batch.size, ws.index.dataset(dataset_id).item_count)
            tick = time.perf_counter()
            evaluation = evaluator.evaluate(proposal_id)
            latencies.append(time.perf_counter() - tick)
            signals = evaluation.signals
            record.gain, record.knn_sum = evaluation.gain, signals.knn_sum
            record.duplicates, record.mislabels = len(signals.exact_duplicates), len(signals.suspected_mislabels)
            record.policy_shares, record.report_cid = evaluation.shares, evaluation.report_cid
            record.seeds = tuple(evaluation.report["inputs"]["seeds"])
            progress(f"{name} proposes {batch.size} items ({kind}) as proposal {proposal_id}; evaluated: gain "
                     f"{evaluation.gain * 100:+.2f} points, {evaluation.shares} shares by policy")
            _vote(ws, dataset_id, record, names, _review(evaluation))
            evaluator.fold_accepted(dataset_id)
            proposals.append(record)

        sale = sell_predictions(ws, evaluator, dataset_id, work / "validation", names, progress)
        trained = compute_round(ws, dataset_id, ws.signer(names[-2]), initiator, PRICE, ROYALTY_BPS, progress)
        holders = _withdraw_all(ws, dataset_id, names)
        revenue = ws.index.dataset(dataset_id).revenue_total
    report = write_report(ws.home.root / "demo-report", dataset_id, proposals, holders, evaluator.model(dataset_id))
    return DemoResult(ws.home.root, dataset_id, proposals, holders, revenue, report,
                      float(np.median(latencies)), sale, trained)


def _vote(
    ws: Workspace, dataset_id: int, record: DemoProposal, names: list[str], review: tuple[bool, str]
) -> None:
    support, reason = review
    address_to_name = {ws.address_of(n): n for n in names}
    voters = sorted(ws.index.holders(dataset_id), key=lambda h: -h.balance)
    supply = ws.market.snapshot_supply(record.proposal_id)
    yes = no = 0
    for holder in voters:
        if 2 * yes > supply or 2 * no > supply:
            break
        name = address_to_name.get(holder.holder)
        weight = ws.market.voting_power(record.proposal_id, holder.holder)
        if name is None or weight == 0:
            continue
        ws.market.vote(ws.signer(name), record.proposal_id, support)
        yes, no = (yes + weight, no) if support else (yes, no + weight)
        record.votes.append((name, support, weight, reason))
    wait = 0
    if not (2 * yes > supply or 2 * no > supply):
        wait = 3601  # not decided early: let the voting period pass on the dev chain
    elif 2 * yes > supply and yes < supply:
        wait = ws.market.dataset(dataset_id).min_accept_delay  # an early acceptance waits this long
    if wait:
        for method, params in (("evm_increaseTime", [wait]), ("evm_mine", [])):
            reply = ws.ledger.w3.provider.make_request(method, params)  # type: ignore[arg-type]
            if "error" in reply:  # a running node started without --dev
                raise ChainError(f"the node refused {method} ({reply['error'].get('message')}); "
                                 "start it with 'databright node --dev' to run the demo against it")
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


def write_report(
    folder: Path, dataset_id: int, proposals: list[DemoProposal], holders: list[dict[str, Any]],
    model: dict[str, Any],
) -> Path:
    """A Markdown report with two PNG plots: value per proposal, shares against dataset size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    colours = {"clean": "#2f7d4f", "flipped labels": "#c0392b", "repeats accepted items": "#d68910"}

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    ax.bar([str(p.proposal_id) for p in proposals], [p.gain * 100 for p in proposals],
           color=[colours[p.kind] for p in proposals])
    ax.axhline(0, color="#444", linewidth=0.8)
    ax.set_xlabel("proposal")
    ax.set_ylabel("accuracy gain (points)")
    ax.set_title("Value of each proposal (leave-one-out gain of the best model)")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=k) for k, c in colours.items()], frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "value-per-proposal.png")
    plt.close(fig)

    honest = [p for p in proposals if p.kind == "clean"]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    ax.plot([p.accepted_before for p in honest], [p.shares for p in honest], marker="o", color="#2f7d4f")
    for p in honest:
        ax.annotate(p.contributor, (p.accepted_before, p.shares), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("accepted items before the proposal")
    ax.set_ylabel("shares earned (100 items)")
    ax.set_title("Diminishing returns: the same-size clean batch earns less later")
    fig.tight_layout()
    fig.savefig(folder / "shares-vs-size.png")
    plt.close(fig)

    seeds = len(proposals[0].seeds) if proposals else 0
    lines = [
        f"# DataBright demo: dataset {dataset_id} (digits)",
        "",
        "Every proposal was valued by the dataset's evaluator before the vote: the accuracy gain of the "
        f"best model fine-tuned with the batch over the same model fine-tuned without it ({seeds} seeds), plus "
        "KNN-Shapley values against the validation split, exact duplicates and suspected mislabels.",
        "",
        "![value per proposal](value-per-proposal.png)",
        "",
        "![shares against dataset size](shares-vs-size.png)",
        "",
        "| proposal | contributor | kind | accepted before | gain (points) | KNN-Shapley sum | duplicates | "
        "suspected mislabels | outcome | shares |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for p in proposals:
        lines.append(f"| {p.proposal_id} | {p.contributor} | {p.kind} | {p.accepted_before} | {p.gain * 100:+.2f} "
                     f"| {p.knn_sum:+.4f} | {p.duplicates} | {p.mislabels} | {p.outcome} | {p.shares} |")
    lines += ["", "| holder | shares | fraction | withdrawn (ETH) |", "|---|---:|---:|---:|"]
    for h in holders:
        lines.append(f"| {h['name']} | {h['shares']} | {h['fraction']:.1%} | {h['withdrawn_wei'] / 1e18:.6f} |")
    if model:
        lines += ["", f"Best checkpoint: `{model['checkpoint']}` (validation accuracy {model['score']:.4f}).",
                  "", "Evaluation reports (re-run any with `databright evaluate --verify CID`):", ""]
        lines += [f"- proposal {p.proposal_id}: `{p.report_cid}`" for p in proposals]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
