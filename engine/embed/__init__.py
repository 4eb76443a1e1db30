"""Embedding models behind one small protocol; `load_embedders` resolves each route to a model or to None."""

from .base import ROUTES, Embedder, ModelReport
from .registry import format_reports, load_embedders

__all__ = ["ROUTES", "Embedder", "ModelReport", "format_reports", "load_embedders"]
