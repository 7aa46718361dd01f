"""The model market as the model pages show it, read from the index (which mirrors ModelMarket).

A model's row joined with its immutable versions; the registry ranks by the
best verified score over its versions (as ``/api/v1/models`` does), then by
claimed score. ``predictions`` is the index's count: what the redeemed money
bought at the price in force when it was redeemed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from databright.index import (
    ChannelRow, Index, ModelRow, ModelVersionRow, best_verified, channels_of, get_model, list_models,
)
from databright.web._state import WebState

__all__ = ["ModelView", "channels", "model_view", "models_deployed", "ranked"]


@dataclass(frozen=True)
class ModelView:
    row: ModelRow
    versions: list[ModelVersionRow]

    @property
    def model_id(self) -> int:
        return self.row.model_id

    @property
    def dataset_id(self) -> int:
        return self.row.dataset_id

    @property
    def latest(self) -> ModelVersionRow:
        return self.versions[-1]

    @property
    def verified_score(self) -> int | None:
        """The best verified score over its versions, as the API and the impact figures rank."""
        return best_verified(self.versions)

    @property
    def owner_revenue(self) -> int:
        """What the owner kept of the redeemed payments: all of it but the royalties."""
        return self.row.revenue - self.row.royalties


def models_deployed(state: WebState) -> bool:
    return "ModelMarket" in state.ws.deployment.contracts


def _versions(index: Index, model_ids: list[int] | None = None) -> dict[int, list[ModelVersionRow]]:
    query = select(ModelVersionRow).order_by(ModelVersionRow.model_id, ModelVersionRow.version)
    if model_ids is not None:
        query = query.where(ModelVersionRow.model_id.in_(model_ids))
    out: dict[int, list[ModelVersionRow]] = {}
    with index.session() as session:
        for v in session.scalars(query):
            out.setdefault(v.model_id, []).append(v)
    return out


def ranked(state: WebState, *, dataset_id: int | None = None, owner: str | None = None) -> list[ModelView]:
    """Models (with at least one version) by verified score, best first, unverified last; then claimed."""
    index = state.ws.index
    rows = list_models(index, dataset_id=dataset_id, owner=owner)
    versions = _versions(index, [r.model_id for r in rows])
    views = [ModelView(r, versions[r.model_id]) for r in rows if versions.get(r.model_id)]
    return sorted(views, key=lambda m: (m.verified_score is None, -(m.verified_score or 0),
                                        -m.latest.claimed_score, m.model_id))


def model_view(state: WebState, model_id: int) -> ModelView:
    """One model (NotFound if the index has no such model with a version)."""
    index = state.ws.index
    row = get_model(index, model_id)
    return ModelView(row, _versions(index, [model_id]).get(model_id) or [])


def channels(state: WebState, user: str, model_id: int | None = None) -> list[ChannelRow]:
    return [c for c in channels_of(state.ws.index, user) if model_id in (None, c.model_id)]
