"""Index backends other than the embedded SQLite + hnswlib one (engine/local.py): each answers engine/backend.py's
Protocols from an external engine, so the ranking code never knows which one runs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def make_backend(store, index_dir: Path, settings, root: Path, log: Callable[[str], None]):
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
