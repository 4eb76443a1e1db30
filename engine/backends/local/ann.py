"""hnswlib candidate index over L2-normalised vectors keyed by chunk id: derived data, rebuildable from the store.

Thread safety: every call that touches the hnswlib object (add, remove, search, save, ...) holds one
re-entrant lock, because hnswlib does not support an add or resize running next to a search. hnswlib releases
the GIL inside its C++ calls, so other Python threads keep running; searches on one index are serialised
(a top-100 search takes ~0.1 ms, so this costs nothing measurable for an editor).

On disk an index is two files: `<name>` (hnswlib's own format) and `<name>.meta.json` (generation, dim,
counts, format/hnswlib version, deleted labels, and a blake2b digest over both). Each is written to a temp
file, fsynced and os.replace()d; whichever order a crash interrupts, the digest no longer matches and
`load` returns None, so the caller rebuilds from the store.

Where hnswlib is not installed (it ships only as a source archive and needs a compiler), the same class runs
on exact numpy search (exact_index.py); `BACKEND` and `AnnIndex.backend` say which one runs, and an
index saved by one backend is never loaded by the other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

try:
    import hnswlib
except ImportError:  # no compiler where sg was installed: exact search instead, said once
    hnswlib = None

FORMAT_VERSION = 1
COMPACTION_RATIO = 0.30  # rebuild once deleted slots exceed this share of all slots
_GROWTH = 1.5
_MIN_CAPACITY = 16
_HASH_CHUNK = 1 << 20

if hnswlib is not None:
    BACKEND = "hnswlib"
    from ...dist import dist_version

    _HNSWLIB_VERSION = dist_version("hnswlib")
    _Index = hnswlib.Index
else:
    from .exact_index import ExactIndex as _Index

    BACKEND = "numpy-exact"
    _HNSWLIB_VERSION = "numpy-exact-1"  # the format tag in the sidecar: never mistaken for an hnswlib file
BACKEND_NOTE = ("hnswlib" if hnswlib is not None else
                "exact numpy search (hnswlib is not installed; it needs a C++ compiler: pip install hnswlib)")
_said = False


def _say_backend() -> None:
    global _said
    if hnswlib is None and not _said:
        _said = True
        logging.getLogger("sg").warning("candidate search: %s", BACKEND_NOTE)


def sidecar_path(path: Path) -> Path:
    """Where the metadata of the index saved at `path` lives."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def _as_ids(ids: np.ndarray | list[int]) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {arr.dtype}")
    if arr.min() < 0:
        raise ValueError("ids must be non-negative")
    return arr.astype(np.int64, copy=False)


def _normalise(vecs: np.ndarray, dim: int) -> np.ndarray:
    """Float32 (n, dim) copy with unit rows; all-zero rows stay zero (they match nothing)."""
    arr = np.array(vecs, dtype=np.float32, copy=True, ndmin=2)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {np.shape(vecs)}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinity")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    np.divide(arr, norms, out=arr, where=norms > 0)
    return arr


def _last_occurrence(ids: np.ndarray) -> np.ndarray:
    """Indices that keep the last occurrence of each id (a later row replaces an earlier one, as in a dict)."""
    _, first_in_reversed = np.unique(ids[::-1], return_index=True)
    return np.sort(len(ids) - 1 - first_in_reversed)


def _file_digest(path: Path, deleted: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_CHUNK):
            h.update(block)
    h.update(np.sort(deleted).astype("<i8").tobytes())
    return h.hexdigest()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; os.replace is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AnnIndex:
    """Approximate cosine top-k over chunk ids. Vectors are normalised on the way in, so any scale works."""

    def __init__(self, index, dim: int, ef_search: int, deleted: set[int] | None = None):
        self._index = index
        self._dim = dim
        self._ef_search = ef_search
        self._deleted: set[int] = set(deleted or ())  # labels whose slot is marked deleted (bounded by compaction)
        self._lock = threading.RLock()
        index.set_ef(ef_search)
        _say_backend()

    # construction ----------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vecs: np.ndarray, m: int = 16, ef_construction: int = 200,
              ef_search: int = 128, *, threads: int = -1, seed: int = 100) -> AnnIndex:
        """A fresh index over `ids`/`vecs` (rows (n, dim); a repeated id keeps its last row).

        `threads=-1` uses every core (hnswlib's default); a build with threads=1 is deterministic for a seed.
        """
        if dim < 1:
            raise ValueError("dim must be positive")
        ids = _as_ids(ids)
        vecs = _normalise(vecs, dim) if len(ids) else np.zeros((0, dim), np.float32)
        if len(vecs) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(vecs)} vectors")
        if len(ids):
            keep = _last_occurrence(ids)
            ids, vecs = ids[keep], vecs[keep]
        index = _Index(space="ip", dim=dim)
        index.init_index(max_elements=max(len(ids), _MIN_CAPACITY), M=m, ef_construction=ef_construction,
                         random_seed=seed)
        if len(ids):
            index.add_items(vecs, ids, num_threads=threads)
        return cls(index, dim, ef_search)

    # properties ------------------------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """hnswlib, or numpy-exact where hnswlib is not installed (see BACKEND_NOTE)."""
        return BACKEND

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ef_search(self) -> int:
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        with self._lock:
            self._ef_search = int(value)
            self._index.set_ef(self._ef_search)

    def __len__(self) -> int:
        """Live (searchable) vectors."""
        with self._lock:
            return self._index.element_count - len(self._deleted)

    @property
    def deleted_count(self) -> int:
        """Slots marked deleted and not yet reused; they cost memory and search time until compaction."""
        with self._lock:
            return len(self._deleted)

    @property
    def capacity(self) -> int:
        with self._lock:
            return self._index.get_max_elements()

    def needs_compaction(self, ratio: float = COMPACTION_RATIO) -> bool:
        """True when deleted slots exceed `ratio` of all slots: rebuild with `AnnIndex.build` (or `compact`)."""
        with self._lock:
            total = self._index.element_count
            return total > 0 and len(self._deleted) > ratio * total

    # mutation --------------------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vecs: np.ndarray, *, threads: int = -1) -> None:
        """Insert or replace: an id already present (live or deleted) gets the new vector and is live again."""
        ids = _as_ids(ids)
        if len(ids) == 0:
            return
        vecs = _normalise(vecs, self._dim)
        if len(vecs) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(vecs)} vectors")
        keep = _last_occurrence(ids)
        ids, vecs = ids[keep], vecs[keep]
        with self._lock:
            # Upper bound on new slots (replacements reuse theirs); grow geometrically so adds stay amortised O(1).
            needed = self._index.element_count + len(ids)
            capacity = self._index.get_max_elements()
            if needed > capacity:
                self._index.resize_index(max(needed, int(capacity * _GROWTH)))
            # Without allow_replace_deleted, hnswlib's addPoint on a deleted label unmarks it and updates it in
            # place; the replace_deleted path can leave a stale label->slot entry behind, so it is not used.
            self._index.add_items(vecs, ids, num_threads=threads)
            if self._deleted:
                self._deleted.difference_update(ids.tolist())

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Mark ids deleted; unknown or already deleted ids are ignored. Returns how many were removed."""
        ids = _as_ids(ids)
        removed = 0
        with self._lock:
            for label in np.unique(ids).tolist():
                if label in self._deleted:
                    continue
                try:
                    self._index.mark_deleted(label)
                except RuntimeError:  # "Label not found"
                    continue
                self._deleted.add(label)
                removed += 1
        return removed

    # queries ---------------------------------------------------------------------------------------------------

    def search(self, vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids int64, cosine similarities float32), best first. k is capped by the live count."""
        ids, sims = self.search_batch(np.asarray(vec, dtype=np.float32).reshape(1, -1), k)
        return ids[0], sims[0]

    def search_batch(self, vecs: np.ndarray, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Top-k for each row of `vecs` (n, dim): lists of n id arrays and n similarity arrays."""
        queries = _normalise(vecs, self._dim)
        with self._lock:
            k = min(int(k), len(self))
            if k <= 0 or len(queries) == 0:
                empty = [np.zeros(0, np.int64) for _ in range(len(queries))]
                return empty, [np.zeros(0, np.float32) for _ in range(len(queries))]
            labels, dists = self._knn(queries, k)
        ids = labels.astype(np.int64)
        sims = (1.0 - dists).astype(np.float32)
        return list(ids), list(sims)

    def _knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """hnswlib's query, with fallbacks for when deleted slots cut the graph and it finds fewer than k."""
        try:
            return self._index.knn_query(queries, k=k, num_threads=1)
        except RuntimeError:
            pass
        total = self._index.element_count
        try:
            self._index.set_ef(min(total, max(4 * k, 2 * self._ef_search)))
            return self._index.knn_query(queries, k=k, num_threads=1)
        except RuntimeError:
            return self._exact(queries, k)
        finally:
            self._index.set_ef(self._ef_search)

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        live = self.live_ids()
        mat = self._index.get_items(live, return_type="numpy").astype(np.float32, copy=False)
        sims = queries @ mat.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return live[top].astype(np.uint64), 1.0 - np.take_along_axis(sims, top, axis=1)

    def live_ids(self) -> np.ndarray:
        """Sorted ids of all live vectors."""
        with self._lock:
            labels = np.asarray(self._index.get_ids_list(), dtype=np.int64)
            if self._deleted:
                labels = labels[~np.isin(labels, np.fromiter(self._deleted, np.int64, len(self._deleted)))]
            return np.sort(labels)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of live ids; raises KeyError for an unknown or deleted id."""
        ids = _as_ids(ids)
        if len(ids) == 0:
            return np.zeros((0, self._dim), np.float32)
        with self._lock:
            try:
                return np.asarray(self._index.get_items(ids, return_type="numpy"), dtype=np.float32)
            except RuntimeError as exc:
                raise KeyError(str(exc)) from None

    def lookup(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(found ids, their vectors) for the live ids among `ids`; unknown and deleted ids are left out."""
        with self._lock:
            ids = [i for i in _as_ids(ids).tolist() if i not in self._deleted]
            try:
                live = np.asarray(ids, np.int64)
                return live, self.vectors(live)
            except KeyError:
                pass
            found, vecs = [], []
            for i in ids:
                try:
                    vecs.append(self._index.get_items([i], return_type="numpy")[0])
                    found.append(i)
                except RuntimeError:
                    continue
        if not found:
            return np.zeros(0, np.int64), np.zeros((0, self._dim), np.float32)
        return np.asarray(found, np.int64), np.asarray(vecs, np.float32)

    def compact(self) -> AnnIndex:
        """A rebuilt index of the live vectors (same parameters), without the deleted slots."""
        with self._lock:
            ids = self.live_ids()
            vecs = self.vectors(ids)
            return AnnIndex.build(self._dim, ids, vecs, m=self._index.M, ef_construction=self._index.ef_construction,
                                  ef_search=self._ef_search)

    # persistence -----------------------------------------------------------------------------------------------

    def save(self, path: Path, generation: int) -> None:
        """Atomically write the index and its sidecar; see the module docstring for the crash argument."""
        path = Path(path)
        directory = path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=directory)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with self._lock:
                self._index.save_index(str(tmp))
                deleted = np.fromiter(self._deleted, np.int64, len(self._deleted))
                meta = {
                    "format": FORMAT_VERSION,
                    "hnswlib": _HNSWLIB_VERSION,
                    "space": "ip",
                    "generation": int(generation),
                    "dim": self._dim,
                    "elements": int(self._index.element_count),
                    "live": len(self),
                    "m": int(self._index.M),
                    "ef_construction": int(self._index.ef_construction),
                    "ef_search": self._ef_search,
                    "deleted": sorted(self._deleted),
                }
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            meta["blake2b"] = _file_digest(tmp, deleted)
            os.replace(tmp, path)
            _fsync_dir(directory)
        finally:
            tmp.unlink(missing_ok=True)
        _atomic_write_text(sidecar_path(path), json.dumps(meta, separators=(",", ":")))

    @classmethod
    def load(cls, path: Path, expected_generation: int, dim: int) -> AnnIndex | None:
        """The saved index, or None if it is missing, damaged, stale (generation) or of another dimension."""
        path = Path(path)
        try:
            meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                return None
            if (meta.get("format") != FORMAT_VERSION or meta.get("hnswlib") != _HNSWLIB_VERSION
                    or meta.get("space") != "ip" or meta.get("generation") != expected_generation
                    or meta.get("dim") != dim):
                return None
            elements, deleted_list = meta.get("elements"), meta.get("deleted")
            ef_search, digest = meta.get("ef_search"), meta.get("blake2b")
            if not (isinstance(elements, int) and isinstance(deleted_list, list) and isinstance(ef_search, int)
                    and isinstance(digest, str) and all(type(x) is int and x >= 0 for x in deleted_list)
                    and len(deleted_list) <= elements and ef_search > 0):
                return None
            deleted = np.asarray(deleted_list, dtype=np.int64)
            with open(path, "rb") as fh:
                # Hash and load the same open file: a concurrent os.replace cannot swap it in between (Linux).
                if _file_digest(Path(f"/proc/self/fd/{fh.fileno()}") if _PROC_FD else path, deleted) != digest:
                    return None
                index = _Index(space="ip", dim=dim)
                index.load_index(f"/proc/self/fd/{fh.fileno()}" if _PROC_FD else str(path))
            if index.element_count != elements or index.dim != dim:
                return None
            return cls(index, dim, ef_search, set(deleted.tolist()))
        except (OSError, ValueError, RuntimeError, TypeError, MemoryError, OverflowError):
            return None


_PROC_FD = os.path.isdir("/proc/self/fd")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        _fsync_dir(path.parent)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
