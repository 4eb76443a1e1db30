"""The embedded default backend: the SQLite store's FTS5 index for BM25 (lexical.py, postings.py) and one
candidate index per embedding space (anns.py over ann.py: hnswlib, or exact numpy search in exact_index.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...settings import Settings
from ...store import Store
from .backend import LocalBackend, LocalView

__all__ = ["LocalBackend", "LocalView", "create"]


def create(store: Store, index_dir: Path, settings: Settings, root: Path, log: Callable[[str], None]) -> LocalBackend:
    """BACKENDS' factory for "local"."""
    return LocalBackend(store, index_dir, settings.index)
