"""The Qdrant backend (docs/qdrant.md): a server or cluster through qdrant-client, the embedded engine
(qdrant-edge-py) in a directory, or qdrant-client's local mode (":memory:", "local:DIR") for tests.
index.py holds the collection layout and queries, sync.py the incremental push, backend.py the Protocols."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...settings import Settings
from ...store import Store
from .backend import QdrantBackend, QdrantView

__all__ = ["QdrantBackend", "QdrantView", "create"]


def create(store: Store, index_dir: Path, settings: Settings, root: Path,
           log: Callable[[str], None]) -> QdrantBackend:
    """BACKENDS' factory for "qdrant"."""
    q = settings.qdrant
    return QdrantBackend(store, q.url, q.collection, repository=q.repository or Path(root).name,
                         api_key_env=q.api_key_env, all_repositories=q.all_repositories, exact=q.exact,
                         hnsw_ef=q.hnsw_ef, hnsw=(settings.index.hnsw_m, settings.index.hnsw_ef_construction),
                         models=settings.models.enabled, log=log)
