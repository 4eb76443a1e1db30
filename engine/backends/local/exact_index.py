"""Exact inner-product search in numpy with hnswlib.Index's interface, for where hnswlib is not installed.

hnswlib is published only as a source archive, so installing it needs a C++ compiler and the Python headers.
Without them sg still installs and AnnIndex runs on this class: the same ids, the same normalisation, exact
top-k (recall 1.0) at a cost linear in the number of vectors (bench/ann_exact.py measures it).
"""

from __future__ import annotations

import io

import numpy as np


class ExactIndex:
    """The part of hnswlib.Index that AnnIndex uses, over a dense float32 matrix ("ip" space only)."""

    def __init__(self, space: str, dim: int) -> None:
        if space != "ip":
            raise ValueError("only the inner-product space is supported")
        self.space = space
        self.dim = dim
        self.M = 0
        self.ef_construction = 0
        self.ef = 10
        self._vecs = np.zeros((0, dim), np.float32)
        self._labels = np.zeros(0, np.int64)
        self._deleted = np.zeros(0, bool)
        self._slot: dict[int, int] = {}
        self._n = 0

    def init_index(self, max_elements: int, M: int = 16, ef_construction: int = 200, random_seed: int = 100,
                   allow_replace_deleted: bool = False) -> None:
        self.M, self.ef_construction = int(M), int(ef_construction)
        self._grow(max_elements)

    def _grow(self, capacity: int) -> None:
        capacity = max(int(capacity), self._n)
        vecs = np.zeros((capacity, self.dim), np.float32)
        vecs[:self._n] = self._vecs[:self._n]
        labels = np.zeros(capacity, np.int64)
        labels[:self._n] = self._labels[:self._n]
        deleted = np.zeros(capacity, bool)
        deleted[:self._n] = self._deleted[:self._n]
        self._vecs, self._labels, self._deleted = vecs, labels, deleted

    @property
    def element_count(self) -> int:
        return self._n

    def get_max_elements(self) -> int:
        return len(self._vecs)

    def resize_index(self, new_size: int) -> None:
        self._grow(new_size)

    def set_ef(self, ef: int) -> None:
        self.ef = int(ef)  # kept for callers that read it back; exact search has no beam width

    def add_items(self, data: np.ndarray, ids: np.ndarray, num_threads: int = -1,
                  replace_deleted: bool = False) -> None:
        data = np.asarray(data, np.float32).reshape(-1, self.dim)
        labels = np.asarray(ids, np.int64).reshape(-1)
        slots = np.empty(len(labels), np.int64)
        for i, label in enumerate(labels.tolist()):  # a later row of the same label replaces an earlier one
            slot = self._slot.get(label)
            if slot is None:
                if self._n >= len(self._vecs):
                    raise RuntimeError("The number of elements exceeds the specified limit")
                slot = self._slot[label] = self._n
                self._labels[slot] = label
                self._n += 1
            slots[i] = slot
        self._vecs[slots] = data
        self._deleted[slots] = False

    def mark_deleted(self, label: int) -> None:
        slot = self._slot.get(int(label))
        if slot is None or self._deleted[slot]:
            raise RuntimeError("Label not found")
        self._deleted[slot] = True

    def knn_query(self, data: np.ndarray, k: int = 1, num_threads: int = -1) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(data, np.float32).reshape(-1, self.dim)
        live = int(self._n - self._deleted[:self._n].sum())
        if k > live:
            raise RuntimeError("Cannot return the results in a contiguous 2D array. Probably ef or M is too small")
        mat = self._vecs[:self._n]
        # one matrix-vector product per query, so a batch returns exactly what single searches return
        sims = np.stack([mat @ q for q in queries]) if len(queries) else np.zeros((0, self._n), np.float32)
        if self._deleted[:self._n].any():
            sims[:, self._deleted[:self._n]] = -np.inf
        if k < self._n:
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(self._n), (len(queries), self._n))
        top_sims = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        slots = np.take_along_axis(part, order, axis=1)
        labels = self._labels[slots].astype(np.uint64)
        return labels, (1.0 - np.take_along_axis(top_sims, order, axis=1)).astype(np.float32)

    def get_items(self, ids, return_type: str = "numpy") -> np.ndarray:
        slots = []
        for label in np.asarray(ids, np.int64).reshape(-1).tolist():
            slot = self._slot.get(label)
            if slot is None or self._deleted[slot]:
                raise RuntimeError("Label not found")
            slots.append(slot)
        return self._vecs[slots].copy()

    def get_ids_list(self) -> list[int]:
        return self._labels[:self._n].tolist()

    def save_index(self, path: str) -> None:
        buf = io.BytesIO()
        np.savez(buf, vecs=self._vecs[:self._n], labels=self._labels[:self._n], deleted=self._deleted[:self._n],
                 params=np.asarray([self.M, self.ef_construction], np.int64))
        with open(path, "wb") as fh:
            fh.write(buf.getvalue())

    def load_index(self, path: str, max_elements: int = 0) -> None:
        with open(path, "rb") as fh:
            data = np.load(io.BytesIO(fh.read()), allow_pickle=False)
            vecs, labels, deleted = data["vecs"], data["labels"], data["deleted"]
            params = data["params"]
        if vecs.ndim != 2 or vecs.shape[1] != self.dim or len(labels) != len(vecs) or len(deleted) != len(vecs):
            raise ValueError("not an exact index of this dimension")
        self.M, self.ef_construction = int(params[0]), int(params[1])
        self._vecs = vecs.astype(np.float32, copy=True)
        self._labels = labels.astype(np.int64, copy=True)
        self._deleted = deleted.astype(bool, copy=True)
        self._n = len(vecs)
        self._slot = {int(label): i for i, label in enumerate(self._labels.tolist())}
