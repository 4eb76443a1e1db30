"""QdrantBackend: engine/backends/base.py's Protocols over a Qdrant collection, so the ranker runs unchanged on it.

The store stays the record: the indexer's write-side calls push what changed (sync.py) and
reads come from Qdrant. Keys are the local store's chunk ids for points of this repository that are checked out
here (so snippets, find-similar's exclusion and the editor's locations work as with the local backend), and the
point id (a str) for any other point, whose row is built from its payload with the path shown as
`repository:path`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...records import ChunkInfo
from ...store import Store
from ..bm25 import fts_words
from .index import Cond, QdrantIndex, SpaceSpec, glob_prefixes, open_target, point_id
from .sync import PushSpace, push, pushed


@dataclass(frozen=True)
class PayloadRow(ChunkInfo):
    """A chunk known only from Qdrant (another repository, or not checked out here)."""

    text: str
    id: str = ""
    hash: str = ""
    route: str = ""
    doc: str = ""
    signature: str = ""


class QdrantBackend:
    """engine.backends.base.Backend on Qdrant (server, cluster, or the embedded engine in a directory)."""

    def __init__(self, store: Store, url: str, collection: str = "sg", *, repository: str, api_key_env: str = "",
                 all_repositories: bool = False, exact: bool = False, hnsw_ef: int = 128,
                 hnsw: tuple[int, int] = (16, 200), models: bool = True, log: Callable[[str], None] | None = None):
        self.store, self.url, self.collection = store, url, collection
        self.repository, self.api_key_env, self.all_repositories = repository, api_key_env, all_repositories
        self.exact, self.hnsw_ef, self.hnsw = exact, hnsw_ef, hnsw
        self.log = log or (lambda msg: None)
        self.target_key = f"{url}#{collection}#{repository}"
        self.spaces: dict[str, PushSpace] = {}
        self._index: QdrantIndex | None = None
        self._lock = threading.RLock()
        # the target now: an embedded directory held by another process fails here, in one line, before any
        # model loads; the collection itself is opened (created) on first use
        self._target = open_target(url, collection, api_key_env=api_key_env, exact=exact, hnsw_ef=hnsw_ef)
        # With models on, chunks wait for open_spaces (the models' spaces) before they are pushed, so that a
        # point travels once with its vectors rather than twice; deletions go at once either way.
        self._ready = not models

    @property
    def index(self) -> QdrantIndex:
        """Opened on first use, with the spaces named by then (lexical only if none): a server collection is
        created once, with every vector it will hold."""
        with self._lock:
            if self._index is None:
                self._open([p.spec for p in self.spaces.values()])
            assert self._index is not None  # _open sets it or raises
            return self._index

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _open(self, specs: list[SpaceSpec]) -> None:
        if self._index is not None and hasattr(self._target, "shard") and self._target.shard is not None:
            self._target.shard.flush()  # the embedded engine re-reads its config to add the new spaces
            self._target.shard.close()
            self._target.shard = None
        self._index = QdrantIndex(self._target, specs, repository=self.repository, hnsw=(*self.hnsw, 10_000))

    def _push(self, only: set[str] | None = None) -> None:
        with self._lock:
            rep = push(self.store, self.index, self.target_key, list(self.spaces.values()),
                       repository=self.repository, only=only)
            if rep.points or rep.deleted_files:
                self.log(f"qdrant: pushed {rep.points} chunks of {rep.files} files, removed {rep.deleted_files} files")

    def _paths_of(self, sql: str, args: Sequence[Any]) -> set[str]:
        out: set[str] = set()
        con = self.store.connection()
        args = list(args)
        for start in range(0, len(args), 500):
            part = args[start:start + 500]
            out |= {r[0] for r in con.execute(sql.format(marks=",".join("?" * len(part))), part)}
        return out

    # -- write side --------------------------------------------------------------------------------------------
    def open_spaces(self, spaces: dict) -> None:
        with self._lock:
            new = {}
            for name, sp in spaces.items():
                emb = sp.embedder
                new[name] = PushSpace(SpaceSpec(name, emb.dim, bool(emb.multi_vector)), list(sp.routes),
                                      getattr(sp, "codec", None))
            if self._index is None or [p.spec for p in new.values()] != [p.spec for p in self.spaces.values()]:
                self.spaces = new
                self._open([p.spec for p in new.values()])
            else:
                self.spaces = new  # codecs may have arrived (a product-quantisation codebook trained)
            self._ready = True
            self._push()

    def drop_space(self, name: str) -> None:
        with self._lock:
            self.spaces.pop(name, None)

    def chunks_changed(self, removed: Sequence, added: Sequence) -> None:
        # removed chunks' files are gone from the store or re-written: the record tells which files to redo
        only = self._paths_of("SELECT f.path FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})",
                              [int(k) for k in added])
        if removed:
            done = pushed(self.store, self.target_key)
            files = self.store.files()
            gone = {p for p in done if p not in files}
            only |= gone if not self._ready else \
                gone | {p for p, h in done.items() if p in files and not h.startswith(files[p].hash + ":")}
        elif not self._ready:
            only = set()
        if only:
            self._push(only)

    def vectors_added(self, space: str, hashes: Sequence[str]) -> None:
        if not self._ready:
            return
        only = self._paths_of("SELECT DISTINCT f.path FROM chunks c JOIN files f ON f.id = c.file_id "
                              "WHERE c.hash IN ({marks})", list(hashes))
        if only:
            self._push(only)

    def save(self) -> None:
        self._push()  # reconcile: cheap when the record already matches the store
        self.index.flush()

    def vector_counts(self) -> dict[str, int]:
        return {name: self.index.count(Cond(repository=self.repository, has_vector=p.spec.candidates))
                for name, p in self.spaces.items()}

    def check(self) -> list[str]:
        problems = []
        files = self.store.files()
        done = pushed(self.store, self.target_key)
        behind = [p for p, f in files.items() if not done.get(p, "").startswith(f.hash + ":")]
        if behind:
            problems.append(f"qdrant: {len(behind)} files not pushed yet (e.g. {behind[0]})")
        want = self.store.connection().execute("SELECT COUNT(*) FROM (SELECT DISTINCT c.file_id, c.hash FROM chunks c)"
                                         ).fetchone()[0]
        have = self.index.count(Cond(repository=self.repository))
        if not behind and want != have:
            problems.append(f"qdrant: the collection holds {have} chunks of {self.repository}, the store {want}")
        return problems

    def warm(self, wait: bool = False) -> None:
        pass  # Qdrant keeps its own indexes warm

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None
            else:
                self._target.close()

    # -- read side ---------------------------------------------------------------------------------------------
    @contextmanager
    def view(self, scope: Sequence[str] | None = None) -> Iterator[QdrantView]:
        con = self.store.connection()
        if con.in_transaction:  # inside another view on this thread: share its read
            yield QdrantView(self, con, scope)
            return
        with self.store.read() as con:
            yield QdrantView(self, con, scope)


class QdrantView:
    """One query's reads: Qdrant for scores, the store's read transaction for local rows."""

    def __init__(self, backend: QdrantBackend, con, scope: Sequence[str] | None):
        self.b, self.ix, self.con = backend, backend.index, con
        repo = None if backend.all_repositories else backend.repository
        self.cond = Cond(repository=repo, prefixes=glob_prefixes(scope))
        self.pid: dict[Any, str] = {}  # key -> point id
        self.foreign: dict[str, dict] = {}  # point id -> payload, for points with no local chunk
        self._n: int | None = None
        self._sizes: dict[str, int] = {}

    # keys ------------------------------------------------------------------------------------------------------
    def _keys(self, scores: dict[str, float], payloads: dict[str, dict]) -> dict[Any, float]:
        """Point ids -> keys: local chunk ids where this repository's chunk is in the store."""
        local: dict[tuple[str, str], int] = {}
        mine = [payloads[p] for p in scores if p in payloads and payloads[p].get("repository") == self.b.repository]
        hashes = list({p["hash"] for p in mine})
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            for path, h, cid in self.con.execute(
                    f"SELECT f.path, c.hash, MIN(c.id) FROM chunks c JOIN files f ON f.id = c.file_id "
                    f"WHERE c.hash IN ({','.join('?' * len(part))}) GROUP BY f.path, c.hash", part):
                local[(path, h)] = cid
        out: dict[Any, float] = {}
        for p, s in scores.items():
            pl = payloads.get(p, {})
            cid = local.get((str(pl.get("path")), str(pl.get("hash")))) \
                if pl.get("repository") == self.b.repository else None
            key = cid if cid is not None else p
            if cid is None:
                self.foreign.setdefault(p, pl)
            self.pid[key] = p
            out[key] = s
        return out

    def _pids(self, keys: Sequence) -> list[str]:
        out = []
        missing = [k for k in keys if k not in self.pid and isinstance(k, int)]
        if missing:
            for cid, row in self.b.store.chunks_by_id(missing, con=self.con, text=False).items():
                self.pid[cid] = point_id(self.b.repository, row.path, row.hash)
        for k in keys:
            p = self.pid.get(k, k if isinstance(k, str) else None)
            if p is not None:
                out.append(p)
        return out

    def _back(self, scores: dict[str, float]) -> dict[Any, float]:
        inverse = {p: k for k, p in self.pid.items()}
        return {inverse.get(p, p): s for p, s in scores.items()}

    # View ------------------------------------------------------------------------------------------------------
    def chunk_count(self) -> int:
        if self._n is None:
            self._n = self.ix.count()  # the population of Qdrant's IDF: the whole collection
        return self._n

    def doc_freqs(self, tokens: Sequence[str]) -> dict[str, int]:
        words = {t: (fts_words(t) or [t]) for t in tokens}
        df = self.ix.doc_freqs([w for ws in words.values() for w in ws], self.chunk_count())
        return {t: min(df[w] for w in ws) for t, ws in words.items()}

    def lexical(self, tokens: Sequence[str], limit: int, cols, keys: Sequence | None = None) -> dict:
        body_only = cols[0] < 0.5  # the nearer of the two stored column weightings
        if keys is not None:
            return self._back(self.ix.lexical_of(tokens, self._pids(keys), body_only))
        payloads: dict[str, dict] = {}
        return self._keys(self.ix.lexical(tokens, limit, body_only, self.cond, payloads), payloads)

    def semantic(self, space: str, pooled: np.ndarray, limit: int, tokens: np.ndarray | None = None) -> dict:
        spec = self.ix.spaces.get(space)
        if spec is None:
            return {}
        payloads: dict[str, dict] = {}
        if spec.multi and tokens is not None and len(tokens):
            got = self.ix.maxsim(space, tokens, pooled, limit, self.cond, payloads)
        else:
            got = self.ix.dense(space, pooled, limit, self.cond, payloads)
        return self._keys(got, payloads)

    def semantic_fill(self, space: str, pooled: np.ndarray, keys: Sequence) -> dict:
        spec = self.ix.spaces.get(space)
        if spec is None or spec.multi or not keys:
            return {}
        return self._back(self.ix.dense_of(space, pooled, self._pids(keys)))

    def space_size(self, space: str) -> int:
        spec = self.ix.spaces.get(space)
        if spec is None:
            return 0
        if space not in self._sizes:
            self._sizes[space] = self.ix.count(Cond(has_vector=spec.candidates))
        return self._sizes[space]

    def rows(self, keys: Sequence, text: bool = False) -> dict:
        local = [k for k in keys if isinstance(k, int)]
        out: dict = dict(self.b.store.chunks_by_id(local, con=self.con, text=text)) if local else {}
        foreign = [k for k in keys if isinstance(k, str)]
        need = [p for p in foreign if text or p not in self.foreign or "symbol" not in self.foreign[p]]
        if need:
            self.foreign.update(self.ix.payloads(need))
        for p in foreign:
            pl = self.foreign.get(p)
            if not pl or "path" not in pl:
                continue
            out[p] = PayloadRow(f"{pl.get('repository', '?')}:{pl['path']}", pl.get("symbol", ""), pl.get("kind", ""),
                                pl.get("language", ""), pl.get("start_line", 1), pl.get("end_line", 1),
                                pl.get("start_col", 0), pl.get("end_col", 0), pl.get("text", "") if text else "",
                                id=p, hash=pl.get("hash", ""), route=pl.get("route", ""))
        return out
