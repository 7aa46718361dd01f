"""The demo's model market: a model trained on the grown dataset earns its shareholders a royalty.

A data scientist trains the dataset's spec on its accepted items (the same
deterministic training as ``databright train``) and registers the model,
paying the dataset's training fee; the dataset's evaluator verifies the score.
A user opens a payment channel and buys predictions from the model's real
prediction server, served on a loopback port, with the Python client that
``databright predict`` uses: one signed cumulative voucher per request. The
owner redeems the latest voucher, which pays the royalty into the dataset in
the same transaction, and every holder's withdrawable revenue grows by their
part of it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databright.errors import ChainError

if TYPE_CHECKING:
    from databright.evaluator import Evaluator
    from databright.workspace import Workspace

__all__ = ["PREDICTIONS", "PRICE", "ROYALTY_BPS", "ModelSale", "sell_predictions"]

PREDICTIONS = 200
PER_REQUEST = 10  # images per prediction request
PRICE = 10**15  # wei per prediction
ROYALTY_BPS = 1000


@dataclass
class ModelSale:
    """One model, one channel, the predictions bought and the royalty they paid."""

    model_id: int
    claimed_score: float
    verified_score: float
    channel_id: int
    predictions: int
    correct: int
    paid_wei: int
    royalty_wei: int
    # Per holder: name, address, withdrawable before the redemption and after it.
    holders: list[dict[str, Any]]


def _register(ws: Workspace, dataset_id: int, scientist: Any) -> tuple[int, float]:
    from databright.ml import ModelSpec
    from databright.models import train_model
    from databright.storage import digest_of_cid

    meta = json.loads(ws.index.dataset(dataset_id).metadata_json)
    spec = ModelSpec.from_json(json.dumps(meta["model_spec"]))
    accepted = sorted(ws.index.proposals(dataset_id=dataset_id, status="accepted"), key=lambda p: p.entry_index or 0)
    trained = train_model(ws.store, dataset_id, spec, [p.manifest_cid for p in accepted], str(meta["validation"]))
    model_id = ws.model_market.register(
        scientist, dataset_id, digest_of_cid(trained.spec_cid), digest_of_cid(trained.checkpoint_cid),
        digest_of_cid(trained.report_cid), trained.score_ppm, PRICE, ROYALTY_BPS)
    ws.sync()
    return model_id, trained.score


class _Server:
    """The model's prediction server on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            self.thread.join(0.05)
        raise ChainError("the prediction server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def _buy(ws: Workspace, model_id: int, buyer: Any, owner: Any, images: list[tuple[Path, str]]) -> tuple[int, int, int]:
    """Open a channel, buy a prediction per image through the server, redeem; (channel, predictions, correct)."""
    from databright.models import (
        PaymentGate,
        PredictionClient,
        Redeemer,
        ServedModel,
        SignedRecord,
        VoucherStore,
        create_app,
    )

    mm, chain_id = ws.model_market, ws.ledger.chain_id
    served = ServedModel.load(mm, ws.store, model_id)
    store = VoucherStore(ws.home.root / "models" / f"vouchers-{chain_id}-{model_id}.sqlite")
    gate = PaymentGate(mm, model_id, store)
    # The demo redeems once, after the last request, as a threshold would.
    redeemer = Redeemer(gate, owner, threshold=PREDICTIONS * PRICE, deadline=86_400)
    channel_id = mm.open_channel(buyer, model_id, (PREDICTIONS + PREDICTIONS // 4) * PRICE)
    correct = predictions = 0
    try:
        with _Server(create_app(served, gate)) as server:
            client = PredictionClient(server.url, mm, buyer, SignedRecord(ws.home.root / "models" /
                                                                          f"signed-{chain_id}.json"))
            try:
                for start in range(0, len(images), PER_REQUEST):
                    chunk = images[start: start + PER_REQUEST]
                    result = client.predict(model_id, files=[p for p, _ in chunk], channel=channel_id)
                    predictions += len(result.predictions)
                    correct += sum(str(p.get("label")) == label
                                   for p, (_, label) in zip(result.predictions, chunk, strict=True))
            finally:
                client.close()
        redeemer.run_once()
    finally:
        store.close()
    return channel_id, predictions, correct


def sell_predictions(ws: Workspace, evaluator: Evaluator, dataset_id: int, validation: Path, names: list[str],
                     progress: Callable[[str], None]) -> ModelSale:
    """Train, register and verify a model on the dataset, sell PREDICTIONS predictions, redeem."""
    from databright.index import get_model, model_versions

    scientist, buyer = ws.signer(names[-2]), ws.signer(names[-1])
    model_id, claimed = _register(ws, dataset_id, scientist)
    fee = get_model(ws.index, model_id).training_fee
    progress(f"{names[-2]} trains a digits model on the accepted items and registers it as model {model_id} "
             f"(accuracy {claimed:.2%}, {PRICE / 1e18:g} ETH per prediction, {ROYALTY_BPS / 100:g}% royalty), "
             f"paying the {fee / 1e18:g} ETH training fee to the shareholders")
    evaluator.verify_models(progress)
    labels = dict(line.split(",", 1) for line in (validation / "labels.csv").read_text().splitlines()[1:])
    images = [(validation / name, label) for name, label in list(labels.items())[:PREDICTIONS]]
    address_to_name = {ws.address_of(n): n for n in names}
    before = {h.holder: ws.market.withdrawable(dataset_id, h.holder) for h in ws.index.holders(dataset_id)}
    channel_id, predictions, correct = _buy(ws, model_id, buyer, scientist, images)
    ws.sync()
    after = {a: ws.market.withdrawable(dataset_id, a) for a in before}
    model = get_model(ws.index, model_id)
    progress(f"{names[-1]} opens channel {channel_id} and buys {predictions} predictions from the model's server "
             f"({correct} correct); {names[-2]} redeems {model.revenue / 1e18:g} ETH, "
             f"{model.royalties / 1e18:g} ETH of it to the shareholders")
    score = model_versions(ws.index, model_id)[-1].verified_score
    holders = [{"name": address_to_name.get(a, a), "address": a, "before_wei": before[a], "after_wei": after[a],
                "royalty_wei": after[a] - before[a]} for a in before]
    return ModelSale(model_id, claimed, (score or 0) / 1e6, channel_id, predictions, correct, model.revenue,
                     model.royalties, holders)
