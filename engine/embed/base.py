"""The protocol every embedder implements, and the report of which model serves which route."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ModelError

ROUTES = ("code", "prose", "cjk")


@runtime_checkable
class Embedder(Protocol):
    """Single-vector models return an (n, dim) float32 array; multi-vector models a list of (tokens_i, dim) arrays.

    Every vector is L2-normalised float32. `ident` is the model identity pinned in the index manifest
    (name + weights hash): two embedders with equal `ident` produce interchangeable vectors.
    """

    name: str
    ident: str
    dim: int
    multi_vector: bool
    max_length: int

    def embed_queries(self, texts: list[str]) -> np.ndarray | list[np.ndarray]: ...

    def embed_documents(self, texts: list[str]) -> np.ndarray | list[np.ndarray]: ...


def embed_snippets(emb: Embedder, texts: list[str]) -> np.ndarray | list[np.ndarray]:
    """Code snippets embedded as documents to search with (find-similar), not to store: the embedder's query
    runtime where it has one of its own (runtime/compose.py's Split: no torch for a search), else its documents'."""
    return getattr(emb, "embed_snippets", emb.embed_documents)(texts)


def pad_batch(seqs: list[list[int]], width: int, pad_id: int, expand: int = 0, mask_id: int = 0,
              attend_expansion: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids padded to `width`, their attention mask, and the positions whose vectors are kept: int64, int64
    and bool (n, width) arrays. ColBERT query augmentation (`expand` > 0): [MASK] tokens up to that length, whose
    vectors stay in the output; the model attends to them only with `attend_expansion`."""
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    keep = mask.astype(bool)
    for row, seq in enumerate(seqs):
        if len(seq) < expand:
            ids[row, len(seq):expand] = mask_id
            keep[row, len(seq):expand] = True
            if attend_expansion:
                mask[row, len(seq):expand] = 1
    return ids, mask, keep


class LoadsOnce:
    """`load()` runs the subclass's `_load()` once, under a lock; a failure is remembered and raised again on every
    later call (a broken model is reported each time, not reloaded each time). `_from_recipe` sets what every
    embedder over a recipe has: its name, size and source, batching, and the loading state; the embedding entry
    points below are the same for every runtime, over the subclass's `_embed` and `_encode_ids`."""

    def _from_recipe(self, recipe, threads: int, batch_size: int) -> None:
        self.recipe = recipe
        self.name = recipe.name
        self.dim = recipe.dim
        self.multi_vector = recipe.multi_vector
        self.max_length = recipe.max_length
        self.batch_size = max(1, batch_size)
        self.threads = threads
        self.source = str(recipe.directory)
        self._lock = threading.Lock()
        self._loaded = False
        self._error: ModelError | None = None

    def _load(self) -> None:
        raise NotImplementedError  # each embedder loads its own way

    def load(self):
        """Load tokenizer and weights now (otherwise the first embed call does). Raises ModelError."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if not self._loaded:
                try:
                    self._load()
                except ModelError as exc:
                    self._error = exc
                    raise
                self._loaded = True
        return self

    def embed_queries(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self._embed(texts, query=True)

    def embed_documents(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self._embed(texts, query=False)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Input length in tokens after truncation, as the model sees it (for throughput figures)."""
        self.load()
        return [len(ids) for ids in self._encode_ids(list(texts), query=False)]

    def _embed(self, texts: list[str], query: bool) -> np.ndarray | list[np.ndarray]:
        raise NotImplementedError  # each runtime runs its own model

    def _forward(self, seqs: list[list[int]], query: bool) -> list[np.ndarray]:
        raise NotImplementedError  # one batch of token ids through the model: a vector (or token vectors) each

    def _in_batches(self, ids: list[list[int]], query: bool) -> np.ndarray | list[np.ndarray]:
        """`_forward` over `ids` in batches of similar lengths (a batch is as wide as its longest sequence); the
        vectors come back in input order, stacked for single-vector models."""
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            for i, vec in zip(batch, self._forward([ids[i] for i in batch], query)):
                out[i] = vec
        if self.multi_vector:
            return out
        return np.stack(out).astype(np.float32, copy=False)

    def _encode_ids(self, texts: list[str], query: bool) -> list[list[int]]:
        raise NotImplementedError  # each runtime tokenizes with its own tokenizer


@dataclass(frozen=True)
class ModelReport:
    """One line of `sg models`: which model serves a route, from where, and why (fallbacks say what failed)."""

    route: str
    model: str | None  # None: this route is served lexically only
    source: str  # directory the weights came from, or ""
    dim: int
    kind: str  # "single" | "multi" | "lexical"
    note: str = ""  # e.g. "microsoft/unixcoder-base not in the local cache; using the offline default"
