"""sg's chunks in Qdrant: collection layout, stable point ids, batched pushes, and the per-component queries
(BM25-like sparse, dense cosine, MaxSim) whose scores sg fuses itself.

One point per chunk:
- a named dense vector per single-vector space (cosine); per multi-vector space a multivector of token vectors
  (MAX_SIM over dot products, no HNSW: m=0) plus its pooled vector (`<space>-pooled`, cosine) for candidates;
- sparse vectors of sg's own lexical tokens (engine.tokenize, code- and CJK-aware) with Modifier.IDF:
  `lex` (path, symbol, body columns weighted 1, 2, 1 as sg's code queries weigh them) and `lex_body` (body only,
  as a CJK-prose query weighs them) carry BM25's document side, tf saturation and length normalisation
  precomputed; `terms` (1.0 per token) answers document frequencies;
- payload: repository, path, symbol, kind, language, lines, columns, route, content and file hash, text.

Where Qdrant's sparse score differs from sg's BM25 (FTS5's bm25(): k1 1.2, b 0.75): Qdrant's IDF is
ln(1 + (N - n + 0.5) / (n + 0.5)), FTS5's ln((N - n + 0.5) / (n + 0.5)) (floored at 1e-6). sg reads n from `terms`
and sends each query token the weight idf_fts5 / idf_qdrant, so the IDF part is FTS5's exactly. What stays
different: the length normalisation uses the average chunk length at push time (BM25's avgdl is frozen into each
point's values), N and n count the whole collection (every repository in it), and a query whose CJK share lies
between 0 and 1 gets the nearer of the two column weightings.

Two kinds of target behind one small adapter: an http(s):// URL is a Qdrant server or cluster (qdrant-client);
a local directory is the embedded engine (qdrant-edge-py), which one process at a time may open. qdrant-client's
local mode (":memory:" or `local:DIR`) serves the contract tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SgError
from ..bm25 import K1, B, fts_words, idf_of, row_counts

NAMESPACE = uuid.UUID("6f1c3a52-52d5-4c5e-9a4e-9f0d2f1b7a10")  # sg's uuid5 namespace for point ids
LEX, LEX_BODY, TERMS = "lex", "lex_body", "terms"
COLUMN_WEIGHTS = {LEX: (1.0, 2.0, 1.0), LEX_BODY: (0.0, 0.0, 1.0)}
PAYLOAD_FIELDS = ("repository", "path", "symbol", "kind", "language", "start_line", "end_line", "start_col",
                  "end_col", "route", "hash", "file_hash")
GLOB_CHARS = "*?["
KEY_FIELDS = ("repository", "path", "hash")  # what maps a hit back to a local chunk


class BackendError(SgError):
    """Qdrant could not be reached or refused a request (after retries)."""


class BackendBusy(BackendError):
    """Another process holds the embedded Qdrant directory."""


@dataclass(frozen=True)
class SpaceSpec:
    """An embedding space as Qdrant stores it."""

    name: str
    dim: int
    multi: bool

    @property
    def candidates(self) -> str:
        """The vector name candidates come from: the pooled vector for a multi-vector space."""
        return f"{self.name}-pooled" if self.multi else self.name


@dataclass
class ChunkPoint:
    """One chunk as pushed: identity, payload, and vectors by name (dense list, token matrix or sparse pair)."""

    id: str
    payload: dict[str, Any]
    vectors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cond:
    """A neutral payload filter: repository, path prefixes (any of), exact path, ids to keep or to leave out."""

    repository: str | None = None
    path: str | None = None
    prefixes: tuple[str, ...] = ()
    ids: tuple[str, ...] | None = None
    not_ids: tuple[str, ...] = ()
    has_vector: str | None = None

    def empty(self) -> bool:
        return self == Cond()


@dataclass
class Q:
    """A neutral query: nearest to `vector` on `using` (optionally over a prefetch's candidates)."""

    using: str
    vector: Any
    limit: int
    cond: Cond = Cond()
    prefetch: Q | None = None
    payload: bool | list[str] = False


# -- identity, sparse vectors, filters --------------------------------------------------------------------------
def point_id(repository: str, path: str, content_hash: str) -> str:
    """Stable id: the same chunk pushed twice (a resume, another machine) is the same point."""
    return str(uuid.uuid5(NAMESPACE, f"{repository}\0{path}\0{content_hash}"))


def term_index(token: str) -> int:
    """A token's sparse dimension: 32 bits of blake2b (collisions among a vocabulary of 1M: ~1 in 10^4 pairs)."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8", "replace"), digest_size=4).digest(), "little")


def sparse_doc(cols: Sequence[str], avgdl: float) -> dict[str, tuple[list[int], list[float]]]:
    """A chunk's sparse vectors from its lexical columns (path, symbol, body token strings as the store keeps
    them): BM25's document factor f (k1 + 1) / (f + k1 (1 - b + b dl / avgdl)) per column weighting, and 1.0
    per token for document counts."""
    counts, length = row_counts(cols)
    norm = K1 * (1 - B + B * length / max(avgdl, 1e-9))
    out: dict[str, tuple[list[int], list[float]]] = {}
    merged: dict[int, dict[str, float]] = {}
    for tok, n in counts.items():
        j = term_index(tok)
        slot = merged.setdefault(j, {LEX: 0.0, LEX_BODY: 0.0})
        for name, w in COLUMN_WEIGHTS.items():
            slot[name] += sum(a * b for a, b in zip(w, n))
    for name in COLUMN_WEIGHTS:
        # every token of the chunk, 0.0 where this weighting ignores its columns: Qdrant's IDF counts the
        # points a dimension is stored for, and FTS5's counts rows holding the word in any column
        pairs = [(j, v[name] * (K1 + 1) / (v[name] + norm)) for j, v in merged.items()]
        out[name] = ([j for j, _ in pairs], [float(v) for _, v in pairs])
    out[TERMS] = (list(merged), [1.0] * len(merged))
    return out


def query_words(tokens: Iterable[str]) -> list[str]:
    """The words FTS5 would match for sg's query tokens, once each."""
    return list(dict.fromkeys(w for t in tokens for w in fts_words(t)))


def qdrant_idf(n_points: int, df: int) -> float:
    return math.log(1 + (n_points - df + 0.5) / (df + 0.5))


def df_from_idf(n_points: int, idf: float) -> int:
    """Invert Qdrant's IDF: n = (N + 1) / e^idf - 0.5."""
    return max(0, round((n_points + 1) / math.exp(idf) - 0.5))


def glob_prefixes(globs: Sequence[str] | None) -> tuple[str, ...]:
    """Path prefixes that cover every match of the globs (sg filters exactly after fetching), or () when one glob
    starts with a wildcard and so cannot be narrowed by a prefix."""
    if not globs:
        return ()
    out = []
    for g in globs:
        cut = min((g.index(c) for c in GLOB_CHARS if c in g), default=len(g))
        if cut == 0:
            return ()
        out.append(g[:cut])
    return tuple(dict.fromkeys(out))


# -- the two kinds of target ------------------------------------------------------------------------------------
class _Target(ABC):
    kind = ""

    @abstractmethod
    def ensure(self, spaces: Sequence[SpaceSpec], hnsw: tuple[int, int, int]) -> None: ...
    @abstractmethod
    def upsert(self, points: list[ChunkPoint]) -> None: ...
    @abstractmethod
    def delete(self, cond: Cond) -> None: ...
    @abstractmethod
    def query(self, queries: list[Q]) -> list[list[tuple[str, float, dict | None]]]: ...
    @abstractmethod
    def retrieve(self, ids: list[str], fields: list[str] | None = None) -> dict[str, dict]: ...
    @abstractmethod
    def count(self, cond: Cond = Cond()) -> int: ...
    @abstractmethod
    def close(self) -> None: ...


class _ClientTarget(_Target):
    """A Qdrant server or cluster (http/https URL), or qdrant-client's local mode (tests)."""

    def __init__(self, client, collection: str, exact: bool, hnsw_ef: int, kind: str):
        from qdrant_client import models

        self.m, self.client, self.collection, self.kind = models, client, collection, kind
        self.params = models.SearchParams(exact=exact, hnsw_ef=None if exact else hnsw_ef)

    def ensure(self, spaces, hnsw):
        m = self.m
        if not self.client.collection_exists(self.collection):
            vectors = {}
            for sp in spaces:
                if sp.multi:
                    vectors[sp.name] = m.VectorParams(
                        size=sp.dim, distance=m.Distance.DOT, hnsw_config=m.HnswConfigDiff(m=0),
                        multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM))
                vectors[sp.candidates] = m.VectorParams(size=sp.dim, distance=m.Distance.COSINE)
            sparse = {name: m.SparseVectorParams(modifier=m.Modifier.IDF) for name in (LEX, LEX_BODY, TERMS)}
            self.client.create_collection(self.collection, vectors_config=vectors, sparse_vectors_config=sparse,
                                          hnsw_config=m.HnswConfigDiff(m=hnsw[0], ef_construct=hnsw[1],
                                                                       full_scan_threshold=hnsw[2]))
            self.client.create_payload_index(self.collection, "repository", m.KeywordIndexParams(
                type=m.KeywordIndexType.KEYWORD, is_tenant=True))
            self.client.create_payload_index(self.collection, "path", m.KeywordIndexParams(
                type=m.KeywordIndexType.KEYWORD, prefix=True))
            return
        have = self.client.get_collection(self.collection).config.params.vectors
        missing = [sp.name for sp in spaces if sp.candidates not in have]
        if missing:
            raise BackendError(f"collection {self.collection} has no vectors for {', '.join(missing)} (another "
                               f"model set); use another qdrant.collection")

    def _vec(self, v):
        if isinstance(v, tuple):
            return self.m.SparseVector(indices=v[0], values=v[1])
        return v.tolist() if isinstance(v, np.ndarray) else v

    def filter(self, cond: Cond):
        m = self.m
        if cond.empty():
            return None
        must, must_not = [], []
        if cond.repository is not None:
            must.append(m.FieldCondition(key="repository", match=m.MatchValue(value=cond.repository)))
        if cond.path is not None:
            must.append(m.FieldCondition(key="path", match=m.MatchValue(value=cond.path)))
        if cond.prefixes:
            must.append(m.Filter(should=[m.FieldCondition(key="path", match=m.MatchPrefix(prefix=p))
                                         for p in cond.prefixes]))
        if cond.ids is not None:
            must.append(m.HasIdCondition(has_id=list(cond.ids)))
        if cond.not_ids:
            must_not.append(m.HasIdCondition(has_id=list(cond.not_ids)))
        if cond.has_vector is not None:
            must.append(m.HasVectorCondition(has_vector=cond.has_vector))
        return m.Filter(must=must or None, must_not=must_not or None)

    def upsert(self, points):
        self.client.upsert(self.collection, points=[
            self.m.PointStruct(id=p.id, payload=p.payload, vector={k: self._vec(v) for k, v in p.vectors.items()})
            for p in points], wait=True)

    def delete(self, cond):
        self.client.delete(self.collection, points_selector=self.m.FilterSelector(filter=self.filter(cond)),
                           wait=True)

    def _request(self, q: Q):
        m = self.m
        pre = None
        if q.prefetch is not None:
            p = q.prefetch
            pre = m.Prefetch(query=self._vec(p.vector), using=p.using, limit=p.limit, filter=self.filter(p.cond),
                             params=self.params)
        return m.QueryRequest(query=self._vec(q.vector), using=q.using, limit=q.limit, prefetch=pre,
                              filter=self.filter(q.cond), params=self.params, with_payload=q.payload)

    def query(self, queries):
        if not queries:
            return []
        res = self.client.query_batch_points(self.collection, requests=[self._request(q) for q in queries])
        return [[(str(p.id), float(p.score), p.payload) for p in r.points] for r in res]

    def retrieve(self, ids, fields=None):
        recs = self.client.retrieve(self.collection, ids=list(ids), with_payload=fields or True, with_vectors=False)
        return {str(r.id): r.payload for r in recs}

    def count(self, cond=Cond()):
        return self.client.count(self.collection, count_filter=self.filter(cond), exact=True).count

    def close(self):
        self.client.close()


class _EdgeTarget(_Target):
    """The embedded Qdrant engine (qdrant-edge-py): one shard in `<dir>/<collection>`, one process at a time."""

    kind = "edge"

    def __init__(self, directory: Path, collection: str, exact: bool, hnsw_ef: int):
        import qdrant_edge as E

        self.E, self.path = E, Path(directory) / collection
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.parent / f".{collection}.sg-lock", "a+")
        try:  # our own lock first: a clear message, and never a wait
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "?"
            self._lock.close()
            raise BackendBusy(f"{self.path} is open in another sg process (pid {holder}); stop it or point "
                              f"qdrant.url at another directory") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        self.shard: Any = None  # qdrant_edge.EdgeShard once ensure() opened it
        self.params = E.SearchParams(exact=exact, hnsw_ef=None if exact else hnsw_ef)

    def ensure(self, spaces, hnsw):
        E = self.E
        if self.shard is not None:  # a second QdrantIndex (another repository) over the same open shard
            return
        vectors = {}
        for sp in spaces:
            if sp.multi:
                vectors[sp.name] = E.EdgeVectorParams(
                    sp.dim, E.Distance.Dot, multivector_config=E.MultiVectorConfig(E.MultiVectorComparator.MaxSim),
                    hnsw_config=E.HnswIndexConfig(m=0, ef_construct=hnsw[1], full_scan_threshold=10_000))
            vectors[sp.candidates] = E.EdgeVectorParams(sp.dim, E.Distance.Cosine)
        cfg = E.EdgeConfig(vectors=vectors,
                           sparse_vectors={n: E.EdgeSparseVectorParams(modifier=E.Modifier.Idf)
                                           for n in (LEX, LEX_BODY, TERMS)},
                           hnsw_config=E.HnswIndexConfig(m=hnsw[0], ef_construct=hnsw[1], full_scan_threshold=hnsw[2]),
                           # below full_scan_threshold (KB of vectors) a segment is scanned exactly: build HNSW
                           # from there on, not from Qdrant's default 10 MB
                           optimizers=E.EdgeOptimizersConfig(indexing_threshold=max(hnsw[2], 1)))
        try:
            if (self.path / "edge_config.json").exists():
                self.shard = E.EdgeShard.load(str(self.path))
                have = self._vector_names()
                for name, params in vectors.items():  # a space added since (a model turned on)
                    if name not in have:
                        self.shard.update(E.UpdateOperation.create_dense_vector(
                            name, params.size, params.distance, multivector_config=params.multivector_config))
            else:
                self.shard = E.EdgeShard.create(str(self.path), cfg)
                self.shard.update(E.UpdateOperation.create_field_index("repository", E.PayloadSchemaType.Keyword))
                self.shard.update(E.UpdateOperation.create_field_index(
                    "path", E.KeywordIndexParams(prefix=True)))
        except Exception as exc:  # the engine's own lock (WAL) or an incompatible layout
            if "WouldBlock" in str(exc):
                raise BackendBusy(f"{self.path} is open in another process") from None
            raise BackendError(f"cannot open {self.path}: {exc}") from exc

    def _vector_names(self) -> set[str]:
        import json

        try:
            return set(json.loads((self.path / "edge_config.json").read_text()).get("vectors", {}))
        except (OSError, ValueError):
            return set()

    def _vec(self, v):
        if isinstance(v, tuple):
            return self.E.SparseVector(list(v[0]), list(v[1]))
        return v.tolist() if isinstance(v, np.ndarray) else v

    def filter(self, cond: Cond):
        E = self.E
        if cond.empty():
            return None
        must, must_not = [], []
        if cond.repository is not None:
            must.append(E.FieldCondition("repository", match=E.MatchValue(cond.repository)))
        if cond.path is not None:
            must.append(E.FieldCondition("path", match=E.MatchValue(cond.path)))
        if cond.prefixes:
            must.append(E.Filter(should=[E.FieldCondition("path", match=E.MatchPrefix(p)) for p in cond.prefixes]))
        if cond.ids is not None:
            must.append(E.HasIdCondition(set(cond.ids)))
        if cond.not_ids:
            must_not.append(E.HasIdCondition(set(cond.not_ids)))
        if cond.has_vector is not None:
            must.append(E.HasVectorCondition(cond.has_vector))
        return E.Filter(must=must or None, must_not=must_not or None)

    def upsert(self, points):
        E = self.E
        self.shard.update(E.UpdateOperation.upsert_points(
            [E.Point(p.id, {k: self._vec(v) for k, v in p.vectors.items()}, p.payload) for p in points]))

    def delete(self, cond):
        self.shard.update(self.E.UpdateOperation.delete_points_by_filter(self.filter(cond)))

    def _request(self, q: Q):
        E = self.E
        pre = None
        if q.prefetch is not None:
            p = q.prefetch
            pre = [E.Prefetch(limit=p.limit, query=E.Query.Nearest(self._vec(p.vector), using=p.using),
                              filter=self.filter(p.cond), params=self.params)]
        return E.QueryRequest(limit=q.limit, query=E.Query.Nearest(self._vec(q.vector), using=q.using),
                              prefetches=pre, filter=self.filter(q.cond), params=self.params, with_payload=q.payload)

    def query(self, queries):
        if not queries:
            return []
        res = self.shard.query_batch(self.E.QueryBatchRequest([self._request(q) for q in queries]))
        return [[(str(p.id), float(p.score), p.payload) for p in r] for r in res]

    def retrieve(self, ids, fields=None):
        return {str(r.id): r.payload for r in self.shard.retrieve(list(ids), with_payload=fields or True,
                                                                  with_vector=False)}

    def count(self, cond=Cond()):
        return self.shard.count(self.E.CountRequest(exact=True, filter=self.filter(cond)))

    def flush(self):
        self.shard.flush()

    def optimize(self) -> bool:
        return self.shard.optimize()

    def close(self):
        if self.shard is not None:
            try:
                self.shard.flush()
                self.shard.close()
            finally:
                self.shard = None
        if not self._lock.closed:
            self._lock.close()  # releases the flock


def open_target(url: str, collection: str, *, api_key_env: str = "", exact: bool = False,
                hnsw_ef: int = 128, timeout: float = 30.0) -> _Target:
    """`http(s)://...` -> a server or cluster; `:memory:` or `local:DIR` -> qdrant-client's local mode (tests);
    anything else is a directory for the embedded engine."""
    if url.startswith(("http://", "https://")) or url == ":memory:" or url.startswith("local:"):
        try:
            from qdrant_client import QdrantClient
        except ImportError as exc:
            raise BackendError("the Qdrant backend needs qdrant-client: pip install 'sg-search[qdrant]'") from exc
        if url == ":memory:":
            return _ClientTarget(QdrantClient(":memory:"), collection, exact, hnsw_ef, "client-local")
        if url.startswith("local:"):
            return _ClientTarget(QdrantClient(path=url[6:]), collection, exact, hnsw_ef, "client-local")
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise BackendError(f"qdrant.api_key_env names {api_key_env}, which is not set in the environment")
        return _ClientTarget(QdrantClient(url=url, api_key=key, timeout=int(timeout)), collection, exact, hnsw_ef,
                             "server")
    try:
        import qdrant_edge  # noqa: F401
    except ImportError as exc:
        raise BackendError("an embedded Qdrant directory needs qdrant-edge-py: pip install 'sg-search[qdrant]'") \
            from exc
    return _EdgeTarget(Path(url).expanduser(), collection, exact, hnsw_ef)


# -- the index sg talks to --------------------------------------------------------------------------------------
class QdrantIndex:
    """One collection: batched pushes with retries, and the queries whose scores sg fuses."""

    def __init__(self, target: _Target, spaces: Sequence[SpaceSpec], *, repository: str | None = None,
                 batch: int = 64, retries: int = 5, backoff: float = 0.5,
                 hnsw: tuple[int, int, int] = (16, 200, 10_000)):
        self.target, self.repository = target, repository
        self.spaces = {sp.name: sp for sp in spaces}
        self.batch, self.retries, self.backoff = batch, retries, backoff
        self._retry(lambda: target.ensure(list(spaces), hnsw))

    @classmethod
    def open(cls, url: str, collection: str, spaces: Sequence[SpaceSpec], *, api_key_env: str = "",
             repository: str | None = None, exact: bool = False, hnsw_ef: int = 128, **kw) -> QdrantIndex:
        target = open_target(url, collection, api_key_env=api_key_env, exact=exact, hnsw_ef=hnsw_ef)
        try:
            return cls(target, spaces, repository=repository, **kw)
        except BaseException:
            target.close()
            raise

    def close(self) -> None:
        self.target.close()

    def __enter__(self) -> QdrantIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------------------------
    def _retry(self, call: Callable[[], Any]) -> Any:
        """Run `call`, retrying transient failures with exponential backoff (0.5 s, 1 s, 2 s, ...)."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except BackendError:
                raise
            except Exception as exc:  # network errors, 5xx, timeouts: each client raises its own kind
                if attempt == self.retries:
                    raise BackendError(f"Qdrant request failed after {attempt + 1} tries: {exc}") from exc
                time.sleep(min(self.backoff * 2 ** attempt, 30.0))

    def upsert(self, points: list[ChunkPoint], progress: Callable[[int], None] | None = None) -> int:
        """Upsert in batches; points already there are overwritten with the same content (same id)."""
        done = 0
        for start in range(0, len(points), self.batch):
            part = points[start:start + self.batch]
            self._retry(partial(self.target.upsert, part))
            done += len(part)
            if progress:
                progress(done)
        return done

    def existing(self, ids: list[str], spaces: str | None = None) -> set[str]:
        """The ids already in the collection (with `spaces`: pushed with those spaces' vectors)."""
        out: set[str] = set()
        for start in range(0, len(ids), 512):
            part = ids[start:start + 512]
            got = self._retry(partial(self.target.retrieve, part, ["spaces"]))
            out |= {i for i, p in got.items() if spaces is None or (p or {}).get("spaces") == spaces}
        return out

    def delete_file(self, path: str, keep: Iterable[str] = (), repository: str | None = None) -> None:
        """Remove a file's points (all of them, or all but `keep`: the ids of its current chunks)."""
        cond = Cond(repository=repository if repository is not None else self.repository, path=path,
                    not_ids=tuple(keep))
        self._retry(lambda: self.target.delete(cond))

    def flush(self) -> None:
        if hasattr(self.target, "flush"):
            self.target.flush()

    def optimize(self) -> None:
        """Embedded engine: merge segments and build HNSW now (a server does this in the background)."""
        if hasattr(self.target, "optimize"):
            self.target.optimize()

    # -- reads -------------------------------------------------------------------------------------------------
    def cond(self, globs: Sequence[str] | None = None, ids: Iterable[str] | None = None) -> Cond:
        return Cond(repository=self.repository, prefixes=glob_prefixes(globs),
                    ids=tuple(ids) if ids is not None else None)

    def count(self, cond: Cond | None = None) -> int:
        """Points in the collection (every repository: the population Qdrant's IDF counts), or matching `cond`."""
        return self._retry(lambda: self.target.count(cond or Cond()))

    def doc_freqs(self, tokens: Sequence[str], n: int | None = None) -> dict[str, int]:
        """How many points hold each word, collection-wide (the IDF Qdrant itself uses): a one-word query on
        `terms`, whose values are all 1, scores exactly Qdrant's IDF, which inverts to the count."""
        words = list(dict.fromkeys(tokens))
        if not words:
            return {}
        n = self.count() if n is None else n
        res = self._retry(lambda: self.target.query(
            [Q(TERMS, ([term_index(w)], [1.0]), 1) for w in words]))
        return {w: (df_from_idf(n, r[0][1]) if r else 0) for w, r in zip(words, res)}

    def _lexical_query(self, tokens: Sequence[str], body_only: bool) -> tuple[str, tuple[list[int], list[float]]]:
        """The sparse query: each word weighted idf_fts5 / idf_qdrant, so the product is FTS5's IDF."""
        words = query_words(tokens)
        n = self.count()
        df = self.doc_freqs(words, n)
        idx, val = [], []
        for w in words:
            if df[w]:
                idx.append(term_index(w))
                val.append(idf_of(n, df[w]) / qdrant_idf(n, df[w]))
        return (LEX_BODY if body_only else LEX), (idx, val)

    def _run(self, q: Q, payloads: dict[str, dict] | None, scale: float = 1.0,
             positive: bool = False) -> dict[str, float]:
        """One query; with `payloads`, the hits' key fields (repository, path, hash) are collected into it."""
        if payloads is not None:
            q.payload = list(KEY_FIELDS)
        res = self._retry(lambda: self.target.query([q]))[0]
        if payloads is not None:
            payloads.update((i, p) for i, _, p in res if p is not None)
        return {i: s * scale for i, s, _ in res if s > 0 or not positive}

    def lexical(self, tokens: Sequence[str], limit: int, body_only: bool = False, cond: Cond | None = None,
                payloads: dict[str, dict] | None = None) -> dict[str, float]:
        """BM25-like top `limit` (sg's FTS5 scores, up to avgdl at push time)."""
        using, vec = self._lexical_query(tokens, body_only)
        if not vec[0] or limit <= 0:
            return {}
        return self._run(Q(using, vec, limit, cond or self.cond()), payloads, positive=True)

    def lexical_of(self, tokens: Sequence[str], ids: Sequence[str], body_only: bool = False) -> dict[str, float]:
        """The same scores for exactly these points (those that match at all)."""
        if not ids:
            return {}
        using, vec = self._lexical_query(tokens, body_only)
        if not vec[0]:
            return {}
        return self._run(Q(using, vec, len(ids), Cond(ids=tuple(ids))), None, positive=True)

    def dense(self, space: str, vec: np.ndarray, limit: int, cond: Cond | None = None,
              payloads: dict[str, dict] | None = None) -> dict[str, float]:
        """Cosine top `limit` in a single-vector space (or the pooled vectors of a multi-vector one)."""
        sp = self.spaces[space]
        return self._run(Q(sp.candidates, np.asarray(vec, np.float32), limit, cond or self.cond()), payloads)

    def dense_of(self, space: str, vec: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        return self.dense(space, vec, len(ids), Cond(ids=tuple(ids)))

    def maxsim(self, space: str, qtok: np.ndarray, pooled: np.ndarray, limit: int, cond: Cond | None = None,
               payloads: dict[str, dict] | None = None) -> dict[str, float]:
        """Candidates from the pooled vectors, reranked by exact MaxSim over token vectors in one request; the
        score divided by the query's token count, as sg's MaxSim is."""
        sp = self.spaces[space]
        cond = cond or self.cond()
        pre = Q(sp.candidates, np.asarray(pooled, np.float32), limit, cond)
        return self._run(Q(sp.name, np.asarray(qtok, np.float32), limit, cond, prefetch=pre), payloads,
                         scale=1 / max(len(qtok), 1))

    def payloads(self, ids: Iterable[str], fields: list[str] | None = None) -> dict[str, dict]:
        """Payloads by point id (all fields, or just `fields`)."""
        ids = list(ids)
        out: dict[str, dict] = {}
        for start in range(0, len(ids), 512):
            part = ids[start:start + 512]
            out.update(self._retry(partial(self.target.retrieve, part, fields)))
        return out

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.target.kind, "points": self.count(Cond())}
        if self.repository is not None:
            out["repository_points"] = self.count(Cond(repository=self.repository))
        return out
