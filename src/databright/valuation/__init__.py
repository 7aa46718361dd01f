"""Data valuation: how much each training point is worth to a model."""

from __future__ import annotations

from databright.valuation._knn_shapley import KNNShapley, knn_shapley

__all__ = ["KNNShapley", "knn_shapley"]
