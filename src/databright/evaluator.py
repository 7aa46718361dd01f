"""The trusted evaluator: value every proposal before the vote, reproducibly.

For a proposal, the evaluator fine-tunes the dataset's best checkpoint on the
accepted items with and without the batch (``valuation.loo_gain``), computes the
quality signals (``valuation.quality_signals``), turns the gain into shares by
the dataset's published policy, writes a JSON report to the blob store and posts
value, shares and the report's CID with ``DataMarket.post_evaluation``.

A report holds everything needed to re-run it — the CIDs of every input
manifest and of the checkpoint, the model spec, seeds, steps, library versions
and thread count — and ``verify`` re-runs it and compares the results bitwise.

``run`` is the long-running service: it follows the chain, evaluates each new
proposal of the datasets it is the evaluator of, and folds accepted proposals
into the best checkpoint. The chain is its ledger of work done: a proposal
whose evaluation is on-chain is never evaluated again, so a restart neither
repeats nor skips one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount
from numpy.typing import NDArray
from torch import Tensor

from databright.errors import DataBrightError, InputError
from databright.index import ProposalRow
from databright.ml import (
    DiskRows,
    ModelSpec,
    RowBlock,
    Stack,
    accuracy,
    encode_items,
    encode_labels,
    environment,
    load_checkpoint,
    save_checkpoint,
    train,
)
from databright.storage import Manifest, canonical_json, digest_of_cid
from databright.storage import load_report as storage_load_report
from databright.valuation import (
    PairSignatures,
    RewardPolicy,
    SignalCache,
    Signals,
    loo_gain,
    quality_signals,
    text_pair_results,
    value_ppm,
)
from databright.workspace import Workspace

__all__ = ["Evaluation", "Evaluator", "Verification", "compute_results", "load_report", "verify_report"]

REPORT_VERSION = 1
_ENCODE_CHUNK = 4096
Arrays = tuple[RowBlock, NDArray[np.int64]]


@dataclass(frozen=True)
class Evaluation:
    proposal_id: int
    report: dict[str, Any]
    report_cid: str
    posted: bool

    @property
    def gain(self) -> float:
        return float(self.report["results"]["gain"]["mean"])

    @property
    def shares(self) -> int:
        return int(self.report["results"]["shares"])

    @property
    def signals(self) -> Signals:
        return Signals.from_json(self.report["results"]["signals"])


class _Items:
    """Encoded items of manifests, cached by manifest CID and spec.

    With a ``cache_dir``, encodings are also kept on disk (float32 ``.npy``, read
    back as memory maps), so a dataset's items are decoded once — when the
    service first meets them, on acceptance — and not in every evaluation or
    restart. A manifest CID names its items and the spec's digest names the
    encoding, so a cached file can never be stale.
    """

    def __init__(self, store: Any, cache_dir: Path | None = None) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self._cache: dict[tuple[str, str], tuple[list[str], Arrays]] = {}
        self.pairs = PairSignatures(store)

    def load(self, spec: ModelSpec, manifest_cid: str) -> tuple[list[str], Arrays]:
        key = (spec.to_json(), manifest_cid)
        if key not in self._cache:
            manifest = Manifest.from_bytes(self.store.get(manifest_cid))
            y = encode_labels(spec, [item.label for item in manifest])
            x = self._encodings(spec, manifest, manifest_cid)
            self._cache[key] = ([str(item.cid) for item in manifest], (x, y))
        return self._cache[key]

    def _encodings(self, spec: ModelSpec, manifest: Manifest, manifest_cid: str) -> RowBlock:
        if self.cache_dir is None:
            return encode_items(spec, [self.store.get(item.cid) for item in manifest])
        path = self.cache_dir / hashlib.sha256(spec.to_json().encode()).hexdigest()[:16] / f"{manifest_cid}.npy"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            shape = (len(manifest), *spec.input_shape)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            for start in range(0, len(manifest), _ENCODE_CHUNK):  # bounded memory: a chunk of blobs at a time
                items = manifest.items[start : start + _ENCODE_CHUNK]
                out[start : start + len(items)] = encode_items(spec, [self.store.get(i.cid) for i in items])
            out.flush()
            del out
            os.replace(tmp, path)
        # Read as needed, not mapped: a scan of a memory map keeps every page it touched.
        return DiskRows(path)

    def blocks(self, spec: ModelSpec, manifest_cids: list[str]) -> list[RowBlock]:
        """The encodings of each manifest, as stored (rows on disk when cached there)."""
        return [self.load(spec, cid)[1][0] for cid in manifest_cids]

    def join(self, spec: ModelSpec, manifest_cids: list[str]) -> tuple[list[str], tuple[Stack, NDArray[np.int64]]]:
        """All items of the manifests, in order: their encodings as one uncopied :class:`Stack`."""
        cids: list[str] = []
        xs, ys = [], []
        for cid in manifest_cids:
            item_cids, (x, y) = self.load(spec, cid)
            cids += item_cids
            xs.append(x)
            ys.append(y)
        if not xs:
            raise InputError("the dataset has no accepted items to evaluate against")
        return cids, (Stack(xs), np.concatenate(ys))


def compute_results(
    store: Any,
    inputs: dict[str, Any],
    items: _Items | None = None,
    baselines: dict[tuple[Any, ...], float] | None = None,
    signal_cache: SignalCache | None = None,
) -> dict[str, Any]:
    """The results of an evaluation, a pure function of its ``inputs`` (the caches
    only save work: the results are the same bits with or without them)."""
    if inputs.get("method") == "text-pairs":  # parallel text: no model, valued by its duplicate signals
        return text_pair_results(store, inputs, items.pairs if items is not None else None)
    items = items or _Items(store)
    spec = ModelSpec.from_json(json.dumps(inputs["spec"]))
    policy = RewardPolicy.model_validate(inputs["policy"])
    accepted_cids, accepted = items.join(spec, list(inputs["accepted"]))
    batch_cids, (bx, by) = items.load(spec, inputs["proposal"])
    _, (vx, vy) = items.load(spec, inputs["validation"])
    batch, validation = (np.asarray(bx), by), (np.asarray(vx), vy)  # small: read whole
    checkpoint = load_checkpoint(store.get(inputs["checkpoint"])) if inputs.get("checkpoint") else None
    key = (inputs.get("checkpoint"), tuple(inputs["accepted"]), inputs["validation"], spec.to_json())
    cache = baselines if baselines is not None else {}
    gain, computed = loo_gain(
        spec, checkpoint, accepted, batch, validation, inputs["seeds"],
        baseline=lambda seed: cache.get((*key, seed)),
    )
    for seed, score in computed.items():
        cache[(*key, seed)] = score
    signals = quality_signals(
        items.blocks(spec, list(inputs["accepted"])), accepted[1], accepted_cids, batch[0], batch[1], batch_cids,
        validation[0], validation[1], cache=signal_cache,
        cache_key=(spec.to_json() + inputs["validation"], *inputs["accepted"]),
    )
    return {
        "scores": [{"seed": s.seed, "with": s.with_batch, "without": s.without_batch} for s in gain.scores],
        "gain": {"mean": gain.mean, "std": gain.std},
        "value_ppm": value_ppm(gain.mean),
        "shares": policy.shares(
            gain.mean,
            new_items=len(set(batch_cids) - set(accepted_cids)),
            accepted_items=len(accepted_cids),
            base_reward=int(inputs["base_reward"]),
            cap=int(inputs["cap"]),
        ),
        "signals": signals.to_json(),
    }


class Evaluator:
    """The evaluator of one account, over one workspace."""

    def __init__(self, ws: Workspace, signer: LocalAccount) -> None:
        self.ws = ws
        self.signer = signer
        self.items = _Items(ws.store, ws.home.root / "evaluator" / "encodings")
        self.baselines: dict[tuple[Any, ...], float] = {}
        self.signal_cache = SignalCache(ws.home.root / "evaluator" / "signals")
        self.state_file = ws.home.root / "evaluator" / f"{ws.ledger.chain_id}-{signer.address}.json"

    # -- state: the best checkpoint of each dataset ----------------------------

    def _state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"datasets": {}}
        return data if isinstance(data, dict) else {"datasets": {}}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, self.state_file)

    def model(self, dataset_id: int) -> dict[str, Any]:
        """The dataset's best checkpoint as the evaluator keeps it (CID, score, history)."""
        entry = self._state()["datasets"].get(str(dataset_id))
        return dict(entry) if entry else {}

    # -- what a dataset publishes ------------------------------------------------------

    def _published(self, dataset_id: int) -> tuple[ModelSpec, str, RewardPolicy]:
        row = self.ws.index.dataset(dataset_id)
        meta = json.loads(row.metadata_json or "{}")
        if "model_spec" not in meta or "validation" not in meta:
            raise InputError(
                f"dataset {dataset_id} publishes no model spec and validation split; it cannot be evaluated"
            )
        spec = ModelSpec.from_json(json.dumps(meta["model_spec"]))
        try:
            policy = RewardPolicy.model_validate(meta.get("reward_policy", {}))
        except ValueError as exc:
            raise InputError(f"dataset {dataset_id} publishes an invalid reward policy: {exc}") from exc
        return spec, str(meta["validation"]), policy

    def _accepted(self, dataset_id: int, before: int | None = None) -> list[str]:
        proposals = self.ws.index.proposals(dataset_id=dataset_id, status="accepted")
        ordered = sorted(proposals, key=lambda p: p.entry_index or 0)
        return [p.manifest_cid for p in ordered if before is None or p.proposal_id < before]

    def ensure_checkpoint(self, dataset_id: int) -> dict[str, Any]:
        """Train the first checkpoint (from scratch, seed 0) when the dataset has none."""
        entry = self.model(dataset_id)
        if entry.get("checkpoint"):
            return entry
        spec, validation_cid, _ = self._published(dataset_id)
        accepted = self._accepted(dataset_id)
        _, (x, y) = self.items.join(spec, accepted)
        _, (vx, vy) = self.items.load(spec, validation_cid)
        state = train(spec, None, x, y, steps=spec.pretrain_steps, seed=0)
        entry = self._record(dataset_id, state, accuracy(spec, state, vx, vy), accepted, "pretrained")
        return entry

    def _record(
        self, dataset_id: int, state: dict[str, Tensor], score: float, accepted: list[str], how: str
    ) -> dict[str, Any]:
        cid = str(self.ws.store.put(save_checkpoint(state)))
        data = self._state()
        entry = data["datasets"].setdefault(str(dataset_id), {"history": []})
        entry.update(checkpoint=cid, score=score, folded=list(accepted))
        entry["history"].append({"checkpoint": cid, "score": score, "items_from": len(accepted), "how": how,
                                 "time": int(time.time())})
        self._save_state(data)
        return dict(entry)

    def _signals_only(self, dataset_id: int) -> bool:
        """Whether the dataset is valued by its signals alone (parallel text: no model spec)."""
        meta = json.loads(self.ws.index.dataset(dataset_id).metadata_json or "{}")
        return isinstance(meta, dict) and meta.get("valuation") == "signals"

    def fold_accepted(self, dataset_id: int) -> dict[str, Any]:
        """Fine-tune the best checkpoint on newly accepted data; keep it if it scores better."""
        if self._signals_only(dataset_id):
            return {}
        entry = self.ensure_checkpoint(dataset_id)
        accepted = self._accepted(dataset_id)
        if accepted == entry.get("folded"):
            return entry
        spec, validation_cid, _ = self._published(dataset_id)
        _, (x, y) = self.items.join(spec, accepted)
        _, (vx, vy) = self.items.load(spec, validation_cid)
        state = train(spec, load_checkpoint(self.ws.store.get(entry["checkpoint"])), x, y,
                      steps=spec.finetune_steps, seed=0)
        score = accuracy(spec, state, vx, vy)
        if score >= float(entry["score"]):
            return self._record(dataset_id, state, score, accepted, "fine-tuned on accepted data")
        data = self._state()
        data["datasets"][str(dataset_id)]["folded"] = accepted
        self._save_state(data)
        return self.model(dataset_id)

    # -- evaluation ----------------------------------------------------------------

    def inputs(self, proposal_id: int) -> dict[str, Any]:
        proposal = self.ws.index.proposal(proposal_id)
        if not proposal.manifest_available:
            raise InputError(f"the manifest of proposal {proposal_id} is not in this blob store")
        if self._signals_only(proposal.dataset_id):
            return self._signal_inputs(proposal)
        spec, validation_cid, policy = self._published(proposal.dataset_id)
        checkpoint = self.ensure_checkpoint(proposal.dataset_id)
        dataset = self.ws.index.dataset(proposal.dataset_id)
        return {
            "spec": json.loads(spec.to_json()),
            "policy": policy.model_dump(mode="json"),
            "cap": int(dataset.max_reward_per_proposal),
            "base_reward": int(dataset.base_reward_per_item),
            "accepted": self._accepted(proposal.dataset_id, before=proposal_id),
            "proposal": proposal.manifest_cid,
            "validation": validation_cid,
            "checkpoint": checkpoint["checkpoint"],
            "seeds": list(range(spec.seeds)),
        }

    def _signal_inputs(self, proposal: ProposalRow) -> dict[str, Any]:
        dataset = self.ws.index.dataset(proposal.dataset_id)
        meta = json.loads(dataset.metadata_json or "{}")
        try:
            policy = RewardPolicy.model_validate(meta.get("reward_policy", {}))
        except ValueError as exc:
            raise InputError(f"dataset {proposal.dataset_id} publishes an invalid reward policy: {exc}") from exc
        return {"method": "text-pairs", "policy": policy.model_dump(mode="json"),
                "cap": int(dataset.max_reward_per_proposal), "base_reward": int(dataset.base_reward_per_item),
                "accepted": self._accepted(proposal.dataset_id, before=proposal.proposal_id),
                "proposal": proposal.manifest_cid}

    def evaluate(self, proposal_id: int, *, post: bool = True) -> Evaluation:
        self.ws.sync()
        proposal = self.ws.index.proposal(proposal_id)
        if post:
            self._check_postable(proposal)
        inputs = self.inputs(proposal_id)
        if proposal.manifest_matches is False:
            # The committed root or item count is not the manifest's: nothing
            # the manifest holds is what the proposal commits to on-chain.
            results = mismatch_results(proposal.root, proposal.item_count)
        else:
            results = compute_results(self.ws.store, inputs, self.items, self.baselines, self.signal_cache)
        env = environment()
        report = {
            "databright_evaluation": REPORT_VERSION,
            "chain_id": self.ws.ledger.chain_id,
            "contract": self.ws.market.address,
            "dataset_id": proposal.dataset_id,
            "proposal_id": proposal_id,
            "evaluator": self.signer.address,
            "inputs": inputs,
            "environment": env,
            "results": results,
        }
        report_cid = str(self.ws.store.put(canonical_json(report)))
        if post:
            self.ws.sync()  # votes may have come in while we trained
            self._check_postable(self.ws.index.proposal(proposal_id))
            self.ws.market.post_evaluation(
                self.signer, proposal_id, results["value_ppm"], results["shares"], digest_of_cid(report_cid)
            )
            self.ws.sync()
        return Evaluation(proposal_id, report, report_cid, post)

    def _check_postable(self, proposal: ProposalRow) -> None:
        """What the contract demands of a posting: the proposal's own evaluator,
        once, before any vote and no later than the deadline."""
        pid = proposal.proposal_id
        if proposal.evaluator.lower() != self.signer.address.lower():
            raise InputError(f"{self.signer.address} is not the evaluator of proposal {pid} ({proposal.evaluator})")
        if proposal.status != "open":
            raise InputError(f"proposal {pid} is already {proposal.status}; evaluations are posted before")
        if proposal.evaluated:
            raise InputError(f"proposal {pid} is already evaluated; an evaluation is posted once")
        if proposal.voter_count:
            raise InputError(f"votes were cast on proposal {pid}; an evaluation must come before the first vote")
        if self.ws.ledger.w3.eth.get_block("latest")["timestamp"] > proposal.deadline:
            raise InputError(f"proposal {pid} is past its deadline; it can no longer be evaluated")

    # -- the service ---------------------------------------------------------------

    def pending(self) -> list[int]:
        """Open proposals judged by me, not yet evaluated nor voted on, oldest first."""
        me = self.signer.address.lower()
        now = int(self.ws.ledger.w3.eth.get_block("latest")["timestamp"])
        todo = []
        for p in self.ws.index.proposals(status="open"):
            # Only the proposal's own evaluator may post, before any vote.
            if p.evaluator.lower() == me and not p.evaluated and not p.voter_count and now <= p.deadline:
                if not self.ws.market.proposal(p.proposal_id).evaluated:
                    todo.append(p.proposal_id)
        return sorted(todo)

    def run(
        self,
        *,
        interval: float = 1.0,
        stop: threading.Event | None = None,
        once: bool = False,
        report: Callable[[str], None] = lambda _: None,
    ) -> int:
        """Evaluate new proposals as they arrive; returns how many were evaluated."""
        done = 0
        stop = stop or threading.Event()
        while not stop.is_set():
            self.ws.sync()
            # One dataset's or proposal's trouble (no accepted items yet, a blob
            # missing from this store, a proposal finalized meanwhile) is
            # reported and skipped; the service goes on with the others.
            for dataset in self.ws.index.datasets():
                if dataset.evaluator.lower() == self.signer.address.lower():
                    try:
                        self.fold_accepted(dataset.dataset_id)
                    except DataBrightError as exc:
                        report(f"dataset {dataset.dataset_id}: checkpoint not updated ({exc})")
            done += self.verify_models(report)
            for proposal_id in self.pending():
                if stop.is_set():
                    break
                try:
                    evaluation = self.evaluate(proposal_id)
                except DataBrightError as exc:
                    report(f"proposal {proposal_id}: skipped ({exc})")
                    continue
                done += 1
                report(f"proposal {proposal_id}: gain {evaluation.gain * 100:+.2f} points, {evaluation.shares} shares, "
                       f"report {evaluation.report_cid}")
            if once:
                break
            stop.wait(interval)
        return done

    # -- registered models ------------------------------------------------------------

    def pending_models(self) -> list[tuple[int, int]]:
        """(model, version) of my datasets' registered models with no verified score yet."""
        from databright.index import list_models, model_versions

        if "ModelMarket" not in self.ws.deployment.contracts:
            return []
        me = self.signer.address.lower()
        mine = {d.dataset_id for d in self.ws.index.datasets() if d.evaluator.lower() == me}
        return [(m.model_id, v.version) for m in list_models(self.ws.index) if m.dataset_id in mine
                for v in model_versions(self.ws.index, m.model_id) if v.verified_score is None]

    def verify_models(self, report: Callable[[str], None] = lambda _: None) -> int:
        """Verify and post the score of every newly registered model version of my datasets."""
        from databright.models import verify_model

        done = 0
        for model_id, version in self.pending_models():
            try:
                dataset_id = self.ws.model_market.model(model_id).dataset_id
                result = verify_model(self.ws.model_market, self.ws.store, self.signer, model_id, version,
                                      self._published(dataset_id)[1])
            except DataBrightError as exc:
                report(f"model {model_id} version {version}: not verified ({exc})")
                continue
            done += 1
            report(f"model {model_id} version {version}: verified {result.score_ppm / 10_000:.2f}% "
                   f"({result.reason}), report {result.report_cid}")
        if done:
            self.ws.sync()
        return done


def mismatch_results(root: str, item_count: int) -> dict[str, Any]:
    """The results posted for a proposal whose manifest does not match its on-chain commitment."""
    empty = Signals((), 0.0, 0.0, 0, (), (), (), 0)
    return {
        "manifest_mismatch": {"committed_root": root, "committed_items": item_count},
        "scores": [],
        "gain": {"mean": 0.0, "std": 0.0},
        "value_ppm": 0,
        "shares": 0,
        "signals": empty.to_json(),
    }


def load_report(store: Any, report_cid: str) -> dict[str, Any]:
    return storage_load_report(store, report_cid, "an evaluation report",
                               lambda r: r.get("databright_evaluation") == REPORT_VERSION)


@dataclass(frozen=True)
class Verification:
    report_cid: str
    identical: bool
    differences: tuple[str, ...]
    environment: tuple[str, ...]


def verify_report(store: Any, report_cid: str) -> Verification:
    """Re-run the report stored at ``report_cid`` and compare its results bitwise.

    Bitwise equality is promised in the same environment; ``environment`` lists
    where this one differs from the report's (library versions, threads, machine).
    """
    report = load_report(store, report_cid)
    if "manifest_mismatch" in report["results"]:
        mismatch = report["results"]["manifest_mismatch"]
        again = mismatch_results(mismatch["committed_root"], mismatch["committed_items"])
    else:
        again = compute_results(store, report["inputs"])
    differences = tuple(
        key for key, value in report["results"].items() if canonical_json(value) != canonical_json(again.get(key))
    )
    env = environment()
    notes = tuple(
        f"{key}: report {report['environment'].get(key)}, here {env.get(key)}"
        for key in sorted(set(env) | set(report["environment"]))
        if report["environment"].get(key) != env.get(key)
    )
    return Verification(report_cid, not differences, differences, notes)

