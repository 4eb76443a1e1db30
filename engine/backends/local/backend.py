"""The embedded default backend (engine/backends/base.py's Protocols): BM25 over the SQLite store's FTS index
(lexical.py) and one hnswlib ANN per embedding space (anns.py), all on this machine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ... import score
from ...settings import IndexSettings
from ...spaces import Space
from ...store import Store
from ..base import Row
from .ann import AnnIndex
from .anns import AnnKeeper
from .lexical import Lexical


class LocalView:
    """One read transaction of the store; ANN answers come from the in-memory indexes (kept in step with every
    committed write; a chunk they name that the transaction no longer sees is dropped by rows())."""

    def __init__(self, backend: LocalBackend, con: sqlite3.Connection):
        self.backend, self.con = backend, con

    def chunk_count(self) -> int:
        return self.backend.store.chunk_count()

    def doc_freqs(self, tokens: Sequence[str]) -> dict[str, int]:
        return self.backend.lexical.doc_freqs(list(tokens), self.con)

    def lexical(self, tokens: Sequence[str], limit: int, cols: tuple[float, float, float],
                keys: Sequence[int] | None = None) -> dict[int, float]:
        return self.backend.lexical.scores(list(tokens), limit, cols, con=self.con,
                                           ids=list(keys) if keys is not None else None)

    def semantic(self, space: str, pooled: np.ndarray, limit: int,
                 tokens: np.ndarray | None = None) -> dict[int, float]:
        sa = self.backend.anns.spaces.get(space)
        if sa is None:
            return {}
        with sa.lock:
            if sa.ann is None or len(sa.ann) == 0:
                return {}
            ids, sims = sa.ann.search(pooled, limit)
        if tokens is None:
            return {int(i): float(v) for i, v in zip(ids, sims)}
        sp = sa.space
        blobs = self.backend.store.token_blobs(sp.name, [int(i) for i in ids], con=self.con)
        order = [int(i) for i in ids if int(i) in blobs]
        if sp.codec is None or not order:
            return {int(i): float(v) for i, v in zip(ids, sims)}
        flat, counts = sp.codec.decode_many([blobs[i] for i in order], sp.embedder.dim)
        ms = score.maxsim_packed(tokens, flat, counts) / max(len(tokens), 1)
        return {i: float(v) for i, v in zip(order, ms)}

    def semantic_fill(self, space: str, pooled: np.ndarray, keys: Sequence[int]) -> dict[int, float]:
        sa = self.backend.anns.spaces.get(space)
        if sa is None or sa.space.embedder.multi_vector:
            return {}
        with sa.lock:  # the ANN holds every live pooled vector in memory: no store round trip
            if sa.ann is None:
                return {}
            ids, vecs = sa.ann.lookup(list(keys))
        if not len(ids):
            return {}
        return {int(i): float(v) for i, v in zip(ids, vecs @ pooled)}

    def space_size(self, space: str) -> int:
        sa = self.backend.anns.spaces.get(space)
        return len(sa.ann) if sa is not None and sa.ann is not None else 0

    def rows(self, keys: Sequence[int], text: bool = False) -> dict[int, Row]:
        return dict(self.backend.store.chunks_by_id(keys, con=self.con, text=text))  # typed as rows (ChunkRow is one)


class LocalBackend:
    """engine.backends.base.Backend over the store itself: chunk ids are the keys."""

    def __init__(self, store: Store, index_dir: Path, settings: IndexSettings):
        self.store = store
        self.lexical = Lexical(store)
        self.anns = AnnKeeper(store, index_dir, settings)

    @contextmanager
    def view(self, scope: Sequence[str] | None = None) -> Iterator[LocalView]:
        with self.store.read() as con:
            yield LocalView(self, con)

    def open_spaces(self, spaces: dict[str, Space]) -> None:
        self.anns.open(spaces)

    def drop_space(self, name: str) -> None:
        self.anns.drop(name)

    def chunks_changed(self, removed: Sequence[int], added: Sequence[int]) -> None:
        self.anns.sync(removed, added)

    def vectors_added(self, space: str, hashes: Sequence[str]) -> None:
        self.anns.add_hashes(space, hashes)

    def save(self) -> None:
        self.anns.save()

    def ann(self, space: str) -> AnnIndex | None:
        """The candidate index of a space (None for a space not in use): for status and tests."""
        sa = self.anns.spaces.get(space)
        return sa.ann if sa is not None else None

    def vector_counts(self) -> dict[str, int]:
        return self.anns.counts()

    def check(self) -> list[str]:
        return self.anns.check()

    def warm(self, wait: bool = False) -> None:
        self.lexical.warm(wait)

    def close(self) -> None:
        self.lexical.close()
        if any(sa.dirty for sa in self.anns.spaces.values()):
            self.anns.save()
