"""Index backends other than the embedded SQLite + hnswlib one (engine/local.py): each answers engine/backend.py's
Protocols from an external engine, so the ranking code never knows which one runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..backend import Backend
    from ..settings import Settings
    from ..store import Store


def make_backend(store: Store, index_dir: Path, settings: Settings, root: Path,
                 log: Callable[[str], None]) -> Backend:
    """The backend `index.backend` names: "local" (default) or "qdrant" (docs/qdrant.md)."""
    if settings.index.backend == "qdrant":
        from .qdrant_backend import QdrantBackend

        q = settings.qdrant
        return QdrantBackend(store, q.url, q.collection, repository=q.repository or Path(root).name,
                             api_key_env=q.api_key_env, all_repositories=q.all_repositories, exact=q.exact,
                             hnsw_ef=q.hnsw_ef, hnsw=(settings.index.hnsw_m, settings.index.hnsw_ef_construction),
                             models=settings.models.enabled, log=log)
    from ..local import LocalBackend

    return LocalBackend(store, index_dir, settings.index)
