"""Embedders made of two runtimes: documents from one and queries from another (one vector space), and a
runtime that stands in when the chosen one cannot run here. select.py builds both; nothing else does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from . import RuntimeUnavailable


class _Composed:
    """The Embedder attributes (base.py) taken from the embedder that names the vector space."""

    def _copy_from(self, emb) -> None:
        for attr in ("name", "ident", "dim", "multi_vector", "max_length", "source", "recipe", "batch_size",
                     "threads"):
            setattr(self, attr, getattr(emb, attr, None))


class Split(_Composed):
    """Documents from `documents` (e.g. torch bf16, fastest for indexing on this CPU) and queries from `queries`
    (e.g. ONNX Runtime fp32: no torch import, so a one-shot search starts fast). The identity is the documents'
    one: it names the vectors the index holds. Each side loads on its first call, so a search loads only the
    query side, and an index run with nothing to embed loads nothing. An index run that embeds documents also
    readies the query side (the one-off ONNX export needs torch, which that process has loaded anyway), so the
    next search never imports torch. A snippet embedded as a document to search with (find-similar) goes through
    the query side, in its document mode: a search of any kind stays off torch."""

    def __init__(self, documents, queries) -> None:
        self._copy_from(documents)
        self.documents = documents
        self.queries = queries
        self._queries_ready = False

    def __repr__(self) -> str:
        return f"<Split documents={self.documents!r} queries={self.queries!r}>"

    def load(self):
        """The query side only (what a search needs); the document side loads when documents are embedded."""
        self.queries.load()
        return self

    def embed_queries(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self.queries.embed_queries(texts)

    def embed_documents(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        out = self.documents.embed_documents(texts)
        if not self._queries_ready and len(texts):
            self._queries_ready = True
            self.queries.load()
        return out

    def embed_snippets(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self.queries.embed_documents(texts)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.documents.count_tokens(texts)


class Fallback(_Composed):
    """`primary` unless its load raises RuntimeUnavailable; then `backup()` (the same vector space), said once
    through `log` and kept in `note` for `sg models`."""

    def __init__(self, primary, backup: Callable[[], Any], log: Callable[[str], None] | None = None) -> None:
        self._copy_from(primary)
        self.primary = primary
        self._backup = backup
        self._log = log
        self._active = None
        self._lock = threading.Lock()
        self.note = ""

    def __repr__(self) -> str:
        return f"<Fallback {self.primary!r}{' -> ' + repr(self._active) if self._active is not None else ''}>"

    @property
    def serving(self):
        """The embedder that serves (the primary until a load has failed)."""
        return self._active if self._active is not None else self.primary

    def load(self):
        with self._lock:
            if self._active is None:
                try:
                    self._active = self.primary.load()
                except RuntimeUnavailable as exc:
                    backup = self._backup()
                    self.note = f"{exc}; served by {type(backup).__name__} instead (the same vectors)"
                    if self._log is not None:
                        self._log(self.note)
                    self._active = backup.load()
        return self

    def embed_queries(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self.load()._active.embed_queries(texts)

    def embed_documents(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self.load()._active.embed_documents(texts)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.load()._active.count_tokens(texts)
