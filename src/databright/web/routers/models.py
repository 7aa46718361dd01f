"""The model registry's API: models registered on the ModelMarket, their channels and royalties,
and per dataset the evaluator's reference model (the pages are in ``model_pages``)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, Path, Query

from databright.storage import digest_of_cid
from databright.web._state import WebState
from databright.web._model_views import channels, dataset_revenue, market_model, market_models, models_paid
from databright.web._views import metadata
from databright.web.deps import MAX_ID, DatasetId, StateDep
from databright.web.schemas import (
    ChannelPublic,
    ContributorImpactPublic,
    ErrorPublic,
    MarketModelDetailPublic,
    MarketModelPublic,
    ModelPublic,
    RevenuePublic,
)

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


ModelId = Annotated[int, Path(ge=0, le=MAX_ID)]


@router.get("/api/v1/models", response_model=list[MarketModelPublic])
def list_models(state: StateDep, dataset_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                owner: Annotated[str | None, Query(max_length=42)] = None) -> list[MarketModelPublic]:
    """Registered models, best verified score first: price, royalty, predictions served, royalties paid."""
    return market_models(state, dataset_id=dataset_id, owner=owner)


@router.get("/api/v1/models/{model_id}", response_model=MarketModelDetailPublic,
            responses={404: {"model": ErrorPublic}})
def get_model(model_id: ModelId, state: StateDep) -> MarketModelDetailPublic:
    """A model's versions (claimed and verified scores), prices, redemptions and royalties per shareholder."""
    return market_model(state, model_id)


@router.get("/api/v1/reference-models", response_model=list[ModelPublic])
def list_reference_models(state: StateDep) -> list[ModelPublic]:
    """Per dataset, the evaluator's best checkpoint, which values proposals."""
    return registry(state)


@router.get("/api/v1/datasets/{dataset_id}/revenue", response_model=RevenuePublic,
            responses={404: {"model": ErrorPublic}})
def get_revenue(dataset_id: DatasetId, state: StateDep) -> RevenuePublic:
    """Revenue by source (training fees, prediction royalties, forfeited bonds, payments) and the
    models trained on the dataset, each against the best verified score before it."""
    return dataset_revenue(state, dataset_id)


@router.get("/api/v1/accounts/{address}/channels", response_model=list[ChannelPublic],
            responses={400: {"model": ErrorPublic}})
def get_channels(address: str, state: StateDep) -> list[ChannelPublic]:
    """The payment channels an account opened: deposit, spent (redeemed) and refundable."""
    return channels(state, address)


@router.get("/api/v1/accounts/{address}/models-paid", response_model=list[ContributorImpactPublic],
            responses={400: {"model": ErrorPublic}})
def get_models_paid(address: str, state: StateDep) -> list[ContributorImpactPublic]:
    """The models trained on data the account contributed, and what each has paid it."""
    return models_paid(state, address)
