"""Per dataset, the evaluator's reference model: the best checkpoint it keeps to value new data."""

from __future__ import annotations

from typing import Any, cast

from eth_account.signers.local import LocalAccount
from fastapi import APIRouter

from databright.storage import digest_of_cid
from databright.web._state import WebState
from databright.web._views import metadata
from databright.web.deps import StateDep
from databright.web.schemas import ModelPublic

__all__ = ["router"]

router = APIRouter(tags=["models"])


class _Address:
    """Stands in for the evaluator's account: reading its model state needs only the address."""

    def __init__(self, address: str) -> None:
        self.address = address


def _spec_summary(spec: dict[str, Any]) -> str:
    if not spec:
        return "no model spec published"
    parts = [str(spec.get("kind", "model")).upper()]
    if spec.get("hidden"):
        parts.append("hidden " + "×".join(str(h) for h in spec["hidden"]))
    if spec.get("image_shape"):
        parts.append("input " + "×".join(str(s) for s in spec["image_shape"]))
    elif spec.get("features"):
        parts.append(f"{len(spec['features'])} features")
    parts.append(f"{len(spec.get('classes', []))} classes")
    if spec.get("optimizer"):
        parts.append(f"{spec['optimizer']} lr {spec.get('lr')}")
    return ", ".join(parts)


def registry(state: WebState) -> list[ModelPublic]:
    from databright.evaluator import Evaluator

    models = []
    for d in state.ws.index.datasets():
        spec = metadata(d).get("model_spec") or {}
        entry: dict[str, Any] = {}
        if int(d.evaluator, 16):
            entry = Evaluator(state.ws, cast(LocalAccount, _Address(d.evaluator))).model(d.dataset_id)
        checkpoint = entry.get("checkpoint")
        models.append(ModelPublic(
            dataset_id=d.dataset_id, dataset=d.name or f"dataset {d.dataset_id}", evaluator=d.evaluator,
            kind=str(spec.get("kind", "")), spec=_spec_summary(spec),
            score=float(entry["score"]) if "score" in entry else None, checkpoint_cid=checkpoint,
            checkpoint_digest="0x" + digest_of_cid(checkpoint).hex() if checkpoint else None,
            versions=len(entry.get("history", [])),
        ))
    return models


@router.get("/api/v1/models", response_model=list[ModelPublic])
def list_models(state: StateDep) -> list[ModelPublic]:
    return registry(state)
