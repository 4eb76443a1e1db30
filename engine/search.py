"""The one public entry point: Engine indexes a workspace and answers search/similar queries with explained scores.

Engine is the facade: the indexer (engine/indexer.py) writes the store, a backend (engine/backends/; the embedded
default is engine/backends/local/) answers candidates, and the ranker (engine/rank.py) fuses and boosts them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import route, tokenize
from .backends import make_backend
from .embed.base import ROUTES, Embedder, ModelReport, embed_snippets
from .errors import BadQuery, ModelError, SgError
from .indexer import Indexer, IndexReport
from .multi import scope_patterns
from .rank import Query, Ranker
from .records import MODES, ChunkInfo, Hit, Progress, Skip
from .settings import Settings, load_settings
from .spaces import Space, make_spaces
from .store import ChunkRow, Store


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str
    elapsed_ms: float
    route: dict[str, float]
    models: dict[str, str]
    notes: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)  # what served the answer: "lexical", "semantic" (or both)


class Engine:
    """Indexes one workspace into `<index_dir>/index.sqlite` (+ one ANN file per space) and searches it.

    Thread model: one writer at a time (index/update_files hold the write lock); searches may run on any
    thread at any time and read one committed state of the store.
    """

    def __init__(self, root: str | Path, settings: Settings | None = None, *,
                 embedders: tuple[dict[str, Embedder | None], list[ModelReport]] | None = None,
                 log: Callable[[str], None] | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise BadQuery(f"{root} is not a directory")
        self.log = log or (lambda msg: None)
        # Problems in the workspace's .sg.toml when the engine reads it itself (callers that pass settings have
        # reported theirs): each is logged once and kept for status().
        self.problems: list[str] = []
        self.settings = settings or load_settings(self.root, problems=self.problems, lenient=True)
        for problem in self.problems:
            self.log(f"settings: {problem}")
        index_dir = Path(self.settings.index.index_dir or self.root / ".sg")
        self.index_dir = index_dir if index_dir.is_absolute() else self.root / index_dir
        self.store = Store(self.index_dir / "index.sqlite")
        self.backend = make_backend(self.store, self.index_dir, self.settings, self.root, self.log)  # sg-qdrant
        self._writer = threading.RLock()
        self._indexer = Indexer(self.root, self.index_dir, self.settings.index, self.settings.models.enabled,
                                self.store, self.backend, lambda: self.spaces, self._ensure_models, self._drop_space)
        self._indexer.check_lexical_manifest()
        self._models_loaded = embedders is not None
        self._models_lock = threading.Lock()  # loading models never waits behind an index holding the writer
        self._model_state = ("ready", "") if embedders is not None else \
            ("not loaded", "") if self.settings.models.enabled else ("disabled", "models are turned off")
        self._embedders, self._reports = embedders if embedders is not None else ({r: None for r in ROUTES}, [])
        self.spaces: dict[str, Space] = {}
        self._query_vectors: dict[tuple[str, bool, str], np.ndarray] = {}
        if embedders is not None:
            self._setup_spaces()

    # -- models ------------------------------------------------------------------------------------------------
    def _ensure_models(self, weights: bool = False, warm: bool = False) -> None:
        """Load the models now (blocking); raises the SgError that made loading fail. With `weights`, each
        model's weights too (embedders otherwise load them on their first call)."""
        if self._models_loaded:
            return
        with self._models_lock:
            if self._models_loaded:
                return
            from .embed import load_embedders

            self._model_state = ("loading", "")
            try:
                self._embedders, self._reports = load_embedders(self.settings.models, log=self.log)
                self._setup_spaces()
                for sp in list(self.spaces.values()) if weights else []:
                    try:
                        getattr(sp.embedder, "load", lambda: None)()
                        for _ in range(2 if warm else 0):
                            sp.embedder.embed_queries(["warm up the query encoder"])
                    except ModelError as exc:
                        self._drop_space(sp, exc)
            except SgError as exc:
                self._model_state = ("failed", str(exc))
                raise
            self._models_loaded = True
            self._model_state = ("ready", "")

    def load_models(self, warm: bool = False) -> tuple[str, str]:
        """Load the embedding models if they are enabled and not loaded yet (blocking; safe from any thread, e.g.
        to warm them in the background). Never raises for a model that cannot load: returns model_state().

        `warm` (long-lived processes) also runs each query encoder twice before the models count as ready, so the
        first real query does not pay for the runtime's first calls (the TorchScript trace and its profiling run,
        oneDNN or ONNX Runtime set-up; 270 + 30 ms for MiniLM). A one-shot search does not need it."""
        if self.settings.models.enabled and self._model_state[0] not in ("ready", "failed"):
            try:
                self._ensure_models(weights=True, warm=warm)  # "ready": a query waits for nothing
            except SgError:
                pass
        return self.model_state()

    def model_state(self) -> tuple[str, str]:
        """(state, why): disabled | not loaded | loading | ready | failed."""
        return self._model_state

    def _usable_mode(self, mode: str, wait_for_models: bool, notes: list[str]) -> str:
        """The mode a search can run in now: lexical, with a note, while models load (unless the caller waits for
        them) or when they failed to load."""
        if mode == "lexical" or not self.settings.models.enabled:
            return mode
        if wait_for_models:
            self.load_models()
        state, why = self._model_state
        if state == "failed":
            notes.append(f"no embedding model ({why}): lexical results only")
            return "lexical"
        if state != "ready":
            notes.append("models are still loading: lexical results only")
            return "lexical"
        return mode

    def _setup_spaces(self) -> None:
        self.spaces = make_spaces(self.store, self._embedders, self.settings.index)
        self.backend.open_spaces(self.spaces)

    def _drop_space(self, sp: Space, exc: Exception) -> None:
        """A model that fails to load stops serving; its routes become lexical-only, said once."""
        if self.spaces.pop(sp.name, None) is not None:
            self.backend.drop_space(sp.name)
            for r in sp.routes:
                self._embedders[r] = None
            self._reports = [ModelReport(r.route, None, "", 0, "lexical", f"{r.model} failed to load: {exc}")
                             if r.route in sp.routes else r for r in self._reports]
            self.log(f"{sp.embedder.name} could not be loaded ({exc}); serving {', '.join(sp.routes)} lexically")

    def models(self) -> list[ModelReport]:
        self._ensure_models()
        return list(self._reports)

    def model_names(self) -> dict[str, str]:
        return {r: (e.name if e is not None else "lexical") for r, e in self._embedders.items()}


    # -- search ------------------------------------------------------------------------------------------------
    # -- indexing ----------------------------------------------------------------------------------------------
    def index(self, progress: Progress | None = None, cancel: threading.Event | None = None,
              embed: bool = True) -> IndexReport:
        """Bring the store up to date with the workspace: lexical first (fast), then embeddings (resumable)."""
        with self._writer:
            return self._indexer.index(progress, cancel, embed)

    def update_files(self, paths: list[str], embed: bool = True, buffers: dict[str, str] | None = None) -> IndexReport:
        """Re-index just these workspace-relative paths (on save / file-watch events).

        `buffers` maps paths to an editor's unsaved text, indexed in place of the file's bytes (the file must still
        pass the walk's rules). Such a file is stored with mtime UNSAVED_MTIME, so the next scan that finds it
        reads the disk again: an editor closed without saving, or a server killed, never leaves unsaved text in
        the index for longer than that."""
        with self._writer:
            return self._indexer.update_files(paths, embed, buffers)

    def pending_embeddings(self) -> int:
        """How many chunks still have no vector in the embedding space that reads them (0 with models off, failed
        or not available: then no embedding will ever come): the work a full index still has to do after its
        lexical pass. Resolves the models (~16 ms) but loads no weights."""
        if not self.settings.models.enabled or self._model_state[0] == "failed":
            return 0
        try:
            self._ensure_models()
        except SgError:
            return 0
        return sum(self.store.count_missing(sp.name, sp.routes) for sp in list(self.spaces.values()))

    def warm(self, wait: bool = False) -> None:
        """For long-lived use (the language server, benches): keep the lexical postings in memory too (read in
        the background; `wait` blocks until they are)."""
        self.backend.warm(wait)

    # -- search ------------------------------------------------------------------------------------------------
    def prepare_queries(self, texts: list[str], doc_query: bool = False) -> None:
        """Embed many queries in batches up front (evaluation): later searches for them skip the encoder."""
        self._ensure_models()
        for sp in list(self.spaces.values()):
            try:
                out = embed_snippets(sp.embedder, texts) if doc_query else sp.embedder.embed_queries(texts)
            except ModelError as exc:
                self._drop_space(sp, exc)
                continue
            for t, v in zip(texts, out):
                self._query_vectors[(sp.name, doc_query, t)] = v

    def _check_limit(self, k: int) -> None:
        top = self.settings.search.max_results
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= top:
            raise BadQuery(f"the result limit must be between 1 and {top}, not {k!r}")

    def _check_mode(self, mode: str | None) -> str:
        mode = mode or self.settings.search.mode
        if mode not in MODES:
            raise BadQuery(f"mode must be {', '.join(MODES[:-1])} or {MODES[-1]}, not {mode!r}")
        return mode

    def search(self, query: str, k: int = 10, mode: str | None = None, paths: list[str] | None = None,
               explain: bool = False, wait_for_models: bool = True) -> SearchResult:
        """Rank chunks for a natural-language or code query. `paths` are glob patterns relative to the root (or
        absolute paths inside it). With wait_for_models=False a search never waits for models to load: until
        they are ready it answers lexically, and says so in the notes."""
        t0 = time.perf_counter()
        if not isinstance(query, str) or not query.strip():
            raise BadQuery("the query is empty")
        _encodable(query)
        if len(query) > self.settings.search.max_query_chars:
            limit = self.settings.search.max_query_chars
            raise BadQuery(f"the query has {len(query)} characters; the limit is {limit}")
        self._check_limit(k)
        paths = scope_patterns(paths, [self.root])[0]
        notes: list[str] = []
        mode = self._usable_mode(self._check_mode(mode), wait_for_models, notes)
        weights = route.route_query(query)
        hits, rank_notes, tiers = self._ranker().rank(Query(query, tokenize.tokenize_query(query), weights, mode, k,
                                                            paths))
        return SearchResult(hits, mode, (time.perf_counter() - t0) * 1000, weights, self.model_names(),
                            notes + rank_notes, tiers)

    def chunk_at(self, path: str, line: int, col: int | None = None) -> ChunkInfo | None:
        """The chunk a position falls in: the innermost function, method or class chunk that encloses `line`
        (1-based) and, when given, `col` (0-based code-point column: a chunk that starts after it on its first line
        or ends before it on its last line does not enclose it); else the innermost chunk of any kind; None when no
        chunk does. `path` is workspace-relative or absolute inside the workspace. Engine.similar uses this rule."""
        row = self._chunk_row_at(self._rel(path), line, col)
        return ChunkInfo(row.path, row.symbol, row.kind, row.language, row.start_line, row.end_line,
                         row.start_col, row.end_col) if row is not None else None

    def _chunk_row_at(self, rel: str, line: int, col: int | None) -> ChunkRow | None:
        def encloses(r: ChunkRow) -> bool:
            if not r.start_line <= line <= r.end_line:
                return False
            if col is None:
                return True
            return not (line == r.start_line and col < r.start_col) and not (line == r.end_line and col > r.end_col)

        rows = [r for r in self.store.chunks_of_file(rel) if encloses(r)]
        if not rows:
            return None
        units = [r for r in rows if r.kind in ("function", "method", "class")]
        return min(units or rows, key=lambda r: (r.end_line - r.start_line, r.kind not in ("function", "method")))

    def similar(self, path: str, line: int, k: int = 10, mode: str | None = None, col: int | None = None,
                wait_for_models: bool = True) -> SearchResult:
        """Chunks most similar to the chunk at `line` (1-based) and `col` (0-based code points; None: the line)
        of `path` (chunk_at's rule), excluding that chunk."""
        t0 = time.perf_counter()
        rel = self._rel(path)
        target = self._chunk_row_at(rel, line, col)
        if target is None:
            raise BadQuery(f"no indexed function at {rel}:{line}")
        res = self.similar_text(target.text, k=k + 4, mode=mode, language=target.language,
                                exclude=(target.path, target.symbol, target.id), wait_for_models=wait_for_models)
        res.hits = res.hits[:k]
        res.elapsed_ms = (time.perf_counter() - t0) * 1000
        return res

    def similar_text(self, text: str, k: int = 10, mode: str | None = None, language: str = "",
                     exclude: tuple[str, str, int] | None = None, wait_for_models: bool = True) -> SearchResult:
        """Chunks most similar to a code snippet (the snippet is embedded as a document, not as a query)."""
        t0 = time.perf_counter()
        if not isinstance(text, str) or not text.strip():
            raise BadQuery("the code snippet is empty")
        _encodable(text)
        self._check_limit(k)
        notes: list[str] = []
        mode = self._usable_mode(self._check_mode(mode), wait_for_models, notes)
        text = text[:20_000]
        r = route.route_chunk(text, language or "code")
        weights = {x: (1.0 if x == r else 0.0) for x in ROUTES}
        q_tokens = tokenize.tokenize_query(text, limit=512)
        hits, rank_notes, tiers = self._ranker().rank(Query(text, q_tokens, weights, mode, k + 8, None,
                                                            doc_query=True, name_boost=False))
        if exclude:
            hits = [h for h in hits if h.chunk_id != exclude[2] and not (h.path == exclude[0] and h.symbol
                                                                          and h.symbol == exclude[1])]
        return SearchResult(hits[:k], mode, (time.perf_counter() - t0) * 1000, weights, self.model_names(),
                            notes + rank_notes, tiers)

    def _ranker(self) -> Ranker:
        return Ranker(self.backend, self.spaces, self.settings.search, self._encode, self._drop_space)

    def _encode(self, sp: Space, text: str, doc_query: bool) -> np.ndarray:
        """A query's embedding in one space (a token matrix for multi-vector spaces), from prepare_queries' cache
        when it is there."""
        cached = self._query_vectors.get((sp.name, doc_query, text))
        if cached is not None:
            return cached
        emb = sp.embedder
        return (embed_snippets(emb, [text]) if doc_query else emb.embed_queries([text]))[0]

    def _rel(self, path: str) -> str:
        p = Path(path)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(self.root)
            except (ValueError, OSError):
                raise BadQuery(f"{path} is outside the workspace {self.root}") from None
        rel = p.as_posix()
        if rel.startswith("../") or rel == "..":
            raise BadQuery(f"{path} is outside the workspace {self.root}")
        return rel

    # -- status ------------------------------------------------------------------------------------------------
    def status(self) -> dict:
        """What is indexed: files, chunks, skipped, vectors per model, the models, the model state, the index
        path, and any settings problems found when the engine read the workspace's settings itself."""
        counts = self.store.counts()
        held = self.backend.vector_counts()
        vectors = {sp.embedder.name: held.get(name, 0) for name, sp in self.spaces.items()}
        state, why = self._model_state
        return {**counts, "root": str(self.root), "index": str(self.store.path), "vectors": vectors,
                "models": self.model_names(), "model_state": state, "model_note": why,
                "problems": list(self.problems)}

    def needs_rescan(self, deleted: list[str]) -> bool:
        """True when one of these deleted workspace-relative paths was a folder holding indexed files (the
        watcher reports a deleted folder once, not each file in it): only a walk finds what went with it."""
        known = self.store.files()
        return any(p not in known and any(k.startswith(p.rstrip("/") + "/") for k in known) for p in deleted)

    def configure(self, settings: Settings) -> bool:
        """Apply new settings. Search settings apply at once (True); a change to models or index settings needs a
        new Engine over the same folder (False, nothing applied)."""
        if settings.models != self.settings.models or settings.index != self.settings.index:
            return False
        self.settings = settings
        return True

    def iter_chunks(self) -> Iterator[ChunkRow]:
        """Every indexed chunk, in id order, read in pages (the tuner mines its training pairs from these)."""
        return self.store.iter_chunks()

    def lexical_search(self, query: str, k: int) -> dict[int, float]:
        """BM25 over every chunk for a natural-language query: chunk id -> score, the best `k` (the tuner's hard
        negatives)."""
        with self.backend.view() as v:
            return v.lexical(tokenize.tokenize_query(query), k, (1.0, 2.0, 1.0))

    def check(self) -> list[str]:
        """Integrity problems (empty when healthy): SQLite's own check, table agreement, ANN vs store."""
        self._ensure_models()
        return self.store.integrity() + self.backend.check()

    def skipped(self) -> list[Skip]:
        return self.store.skipped()

    def close(self) -> None:
        with self._writer:
            self.backend.close()
            self.store.close()


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes in argv
        raise BadQuery("the query is not valid text (undecodable bytes)") from None

