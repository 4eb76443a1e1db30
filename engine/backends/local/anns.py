"""The local backend's candidate index per embedding space: one AnnIndex (hnswlib, or exact numpy search) per
space, derived from the store's vectors, saved beside the store and rebuildable from it at any time."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...settings import IndexSettings
from ...spaces import Space
from ...store import Store
from .ann import AnnIndex


@dataclass
class SpaceAnn:
    """A space as the local backend serves it: the engine's Space and its ANN (guarded by `lock`)."""

    space: Space
    ann: AnnIndex | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    dirty: bool = False  # the ANN changed since it was saved
    saved: int | None = None  # the store generation its file carries (None: no current file)

    @property
    def name(self) -> str:
        return self.space.name


class AnnKeeper:
    """The ANN of every space, in step with the store: chunks removed leave it, chunks whose content has a vector
    join it, and it is saved beside the store stamped with the store's generation (a stale file is rebuilt)."""

    def __init__(self, store: Store, index_dir: Path, settings: IndexSettings):
        self.store, self.index_dir, self.settings = store, index_dir, settings
        self.spaces: dict[str, SpaceAnn] = {}

    def path(self, sa: SpaceAnn) -> Path:
        return self.index_dir / f"{sa.name}.hnsw"

    def live_vectors(self, sa: SpaceAnn, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, pooled vectors) of the chunks that have a vector in the space (only `ids`, when given)."""
        sp = sa.space
        pairs = list(self.store.vectors_for_chunks(sp.name, sp.routes, ids=ids))
        dim = sp.embedder.dim
        if not pairs:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        ids_arr = np.fromiter((p[0] for p in pairs), np.int64, len(pairs))
        vecs = np.frombuffer(b"".join(p[1] for p in pairs), np.float32).reshape(len(pairs), dim)
        return ids_arr, vecs

    def build(self, sa: SpaceAnn) -> AnnIndex:
        s = self.settings
        ids, vecs = self.live_vectors(sa)
        return AnnIndex.build(sa.space.embedder.dim, ids, vecs, m=s.hnsw_m, ef_construction=s.hnsw_ef_construction,
                              ef_search=s.hnsw_ef_search)

    def open(self, spaces: dict[str, Space]) -> None:
        """Serve these spaces: each ANN loads from its file when that is current, else is built from the store."""
        self.spaces = {name: SpaceAnn(sp) for name, sp in spaces.items()}
        for sa in self.spaces.values():
            with sa.lock:
                ann = AnnIndex.load(self.path(sa), self.store.generation, sa.space.embedder.dim)
                sa.ann = ann if ann is not None else self.build(sa)
                sa.dirty = ann is None
                sa.saved = self.store.generation if ann is not None else None

    def drop(self, name: str) -> None:
        self.spaces.pop(name, None)

    def add_hashes(self, space: str, hashes: Sequence[str]) -> None:
        """The store now has vectors for these content hashes: their chunks join the space's ANN."""
        sa = self.spaces.get(space)
        if sa is None or not hashes:
            return
        with self.store.read() as con:
            marks = ",".join("?" * len(hashes))
            ids = [r[0] for r in con.execute(f"SELECT id FROM chunks WHERE hash IN ({marks})", list(hashes))]
        ids_arr, vecs = self.live_vectors(sa, ids)
        with sa.lock:
            if sa.ann is None:
                sa.ann = self.build(sa)
            elif len(ids_arr):
                sa.ann.add(ids_arr, vecs)
            sa.dirty = True

    def sync(self, removed: Sequence[int], added: Sequence[int]) -> None:
        """Deleted chunks leave every ANN; new chunks whose content already has a vector join it at once."""
        for sa in self.spaces.values():
            with sa.lock:
                if sa.ann is None:
                    continue
                if removed:
                    sa.ann.remove(np.asarray(removed, np.int64))
                    sa.dirty = True
                if added:
                    ids, vecs = self.live_vectors(sa, added)
                    if len(ids):
                        sa.ann.add(ids, vecs)
                        sa.dirty = True
                if sa.ann.needs_compaction():
                    sa.ann = self.build(sa)

    def save(self, only_dirty: bool = False) -> None:
        gen = self.store.generation
        for sa in self.spaces.values():
            with sa.lock:
                # unchanged and stamped with the current generation: rewriting the file (an fsync of megabytes)
                # after every one-shot search's index pass would only cost time
                if sa.ann is not None and (sa.dirty or (not only_dirty and sa.saved != gen)):
                    sa.ann.save(self.path(sa), gen)
                    sa.dirty, sa.saved = False, gen

    def counts(self) -> dict[str, int]:
        return {name: len(sa.ann) if sa.ann is not None else 0 for name, sa in self.spaces.items()}

    def check(self) -> list[str]:
        problems = []
        for sa in self.spaces.values():
            with sa.lock:
                live = set(self.live_vectors(sa)[0].tolist())
                in_ann = set(sa.ann.live_ids().tolist()) if sa.ann is not None else set()
                if live != in_ann:
                    problems.append(f"{sa.name}: ANN holds {len(in_ann)} chunks, store has vectors for {len(live)}")
        return problems
