"""Embedding spaces (one per model: the routes it serves, its token codec) and the hnswlib ANN kept per space,
derived from the store's vectors and rebuildable from them at any time."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ann import AnnIndex
from .codec import Codec, get_codec
from .embed.base import ROUTES, Embedder
from .settings import IndexSettings
from .store import Store


@dataclass
class Space:
    """An embedding space: one model, the routes it serves, its token codec, and its candidate index."""

    name: str
    embedder: Embedder
    routes: list[str]
    codec: Codec | None  # token codec of a multi-vector space
    ann: AnnIndex | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    dirty: bool = False  # the ANN changed since it was saved


def space_name(ident: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", ident.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.blake2b(ident.encode(), digest_size=4).hexdigest()}"


def make_spaces(store: Store, embedders: dict[str, Embedder | None], settings: IndexSettings) -> dict[str, Space]:
    """One space per distinct model among the routes' embedders, pinned in the store (a space that held another
    model's vectors is emptied). Multi-vector spaces get their token codec; a PQ codec's codebook is trained on
    the first batch embedded and kept in the store."""
    by_ident: dict[str, Space] = {}
    for r in ROUTES:
        emb = embedders.get(r)
        if emb is None:
            continue
        if emb.ident not in by_ident:
            codec_name = settings.token_codec if emb.multi_vector else "fp32"
            name = space_name(emb.ident)
            store.ensure_space(name, emb.ident, emb.dim, emb.multi_vector, codec_name)
            codec = None
            if emb.multi_vector and codec_name != "pq":
                codec = get_codec(codec_name)
            elif emb.multi_vector:
                book = store.spaces()[name]["codebook"]
                codec = get_codec("pq", codebook=book) if book else None
            by_ident[emb.ident] = Space(name, emb, [], codec)
        by_ident[emb.ident].routes.append(r)
    return {s.name: s for s in by_ident.values()}


class AnnKeeper:
    """The ANN of every space, in step with the store: chunks removed leave it, chunks whose content has a vector
    join it, and it is saved beside the store stamped with the store's generation (a stale file is rebuilt)."""

    def __init__(self, store: Store, index_dir: Path, settings: IndexSettings):
        self.store, self.index_dir, self.settings = store, index_dir, settings
        self.spaces: dict[str, Space] = {}

    def path(self, sp: Space) -> Path:
        return self.index_dir / f"{sp.name}.hnsw"

    def live_vectors(self, sp: Space, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, pooled vectors) of the chunks that have a vector in the space (only `ids`, when given)."""
        pairs = list(self.store.vectors_for_chunks(sp.name, sp.routes, ids=ids))
        dim = sp.embedder.dim
        if not pairs:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        ids_arr = np.fromiter((p[0] for p in pairs), np.int64, len(pairs))
        vecs = np.frombuffer(b"".join(p[1] for p in pairs), np.float32).reshape(len(pairs), dim)
        return ids_arr, vecs

    def build(self, sp: Space) -> AnnIndex:
        s = self.settings
        ids, vecs = self.live_vectors(sp)
        return AnnIndex.build(sp.embedder.dim, ids, vecs, m=s.hnsw_m, ef_construction=s.hnsw_ef_construction,
                              ef_search=s.hnsw_ef_search)

    def open(self, spaces: dict[str, Space]) -> None:
        """Serve these spaces: each ANN loads from its file when that is current, else is built from the store."""
        self.spaces = spaces
        for sp in spaces.values():
            with sp.lock:
                ann = AnnIndex.load(self.path(sp), self.store.generation, sp.embedder.dim)
                sp.ann = ann if ann is not None else self.build(sp)
                sp.dirty = ann is None

    def drop(self, name: str) -> None:
        self.spaces.pop(name, None)

    def add_hashes(self, space: str, hashes: Sequence[str]) -> None:
        """The store now has vectors for these content hashes: their chunks join the space's ANN."""
        sp = self.spaces.get(space)
        if sp is None or not hashes:
            return
        with self.store.read() as con:
            marks = ",".join("?" * len(hashes))
            ids = [r[0] for r in con.execute(f"SELECT id FROM chunks WHERE hash IN ({marks})", list(hashes))]
        ids_arr, vecs = self.live_vectors(sp, ids)
        with sp.lock:
            if sp.ann is None:
                sp.ann = self.build(sp)
            elif len(ids_arr):
                sp.ann.add(ids_arr, vecs)
            sp.dirty = True

    def sync(self, removed: Sequence[int], added: Sequence[int]) -> None:
        """Deleted chunks leave every ANN; new chunks whose content already has a vector join it at once."""
        for sp in self.spaces.values():
            with sp.lock:
                if sp.ann is None:
                    continue
                if removed:
                    sp.ann.remove(np.asarray(removed, np.int64))
                    sp.dirty = True
                if added:
                    ids, vecs = self.live_vectors(sp, added)
                    if len(ids):
                        sp.ann.add(ids, vecs)
                        sp.dirty = True
                if sp.ann.needs_compaction():
                    sp.ann = self.build(sp)

    def save(self, only_dirty: bool = False) -> None:
        gen = self.store.generation
        for sp in self.spaces.values():
            with sp.lock:
                if sp.ann is not None and (sp.dirty or not only_dirty):
                    sp.ann.save(self.path(sp), gen)
                    sp.dirty = False

    def counts(self) -> dict[str, int]:
        return {name: len(sp.ann) if sp.ann is not None else 0 for name, sp in self.spaces.items()}

    def check(self) -> list[str]:
        problems = []
        for sp in self.spaces.values():
            with sp.lock:
                live = set(self.live_vectors(sp)[0].tolist())
                in_ann = set(sp.ann.live_ids().tolist()) if sp.ann is not None else set()
                if live != in_ann:
                    problems.append(f"{sp.name}: ANN holds {len(in_ann)} chunks, store has vectors for {len(live)}")
        return problems
