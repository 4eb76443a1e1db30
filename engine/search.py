"""The one public entry point: Engine indexes a workspace and answers search/similar queries with explained scores."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import chunk as chunking
from . import discover, route, score, tokenize
from .ann import AnnIndex
from .codec import PQCodec, get_codec
from .embed.base import ROUTES, Embedder, ModelReport
from .errors import BadQuery, ModelError, SgError
from .multi import scope_patterns
from .records import MODES, ChunkInfo, FileEntry, Hit, Progress, Skip
from .settings import Settings, load_settings
from .store import ChunkRow, Store

FORMAT_VERSION = 1
_FILE_BATCH = 200
_EMBED_BATCH = 128
PRUNE_FROM_CHUNKS = 200  # below this, one chunk is too big a share to call a word common: BM25 keeps every word
UNSAVED_MTIME = -1  # the mtime stored for a file indexed from an editor's unsaved text: never equal to the disk's
POSTING_BUDGET = 0.5  # a search query's kept BM25 words may together fill at most this share of the chunks
GC_MIN, GC_SHARE = 200, 0.1  # vectors are collected once this many chunks (and this share) were removed since


@dataclass
class IndexReport:
    files: int = 0
    changed: int = 0
    removed: int = 0
    skipped: int = 0
    chunks: int = 0
    embedded: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str
    elapsed_ms: float
    route: dict[str, float]
    models: dict[str, str]
    notes: list[str] = field(default_factory=list)


@dataclass
class _Space:
    """An embedding space: one model, the routes it serves, and its candidate index."""

    name: str
    embedder: Embedder
    routes: list[str]
    codec: object
    ann: AnnIndex | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)


def render_for_embedding(row: ChunkRow | object, style: str = "structured") -> str:
    """What a chunk's embedding sees. 'structured' prefixes path words and the symbol split into words."""
    text = row.text
    if style == "raw":
        return text
    path_words = " ".join(tokenize.tokenize_path(row.path)[:12])
    symbol_words = " ".join(tokenize.tokenize_symbol(row.symbol)) if row.symbol else ""
    head = " | ".join(p for p in (path_words, symbol_words) if p)
    return f"{head}\n{text}" if head else text


def unit(v: np.ndarray) -> np.ndarray:
    """A pooled vector scaled to length 1 (a zero vector stays zero), as float32."""
    return (v / (np.linalg.norm(v) or 1.0)).astype(np.float32)


def _space_name(ident: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", ident.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.blake2b(ident.encode(), digest_size=4).hexdigest()}"


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
        self._writer = threading.RLock()
        self._check_lexical_manifest()
        self._models_loaded = embedders is not None
        self._models_lock = threading.Lock()  # loading models never waits behind an index holding the writer
        self._model_state = ("ready", "") if embedders is not None else \
            ("not loaded", "") if self.settings.models.enabled else ("disabled", "models are turned off")
        self._embedders, self._reports = embedders if embedders is not None else ({r: None for r in ROUTES}, [])
        self.spaces: dict[str, _Space] = {}
        self._query_vectors: dict[tuple[str, bool, str], np.ndarray] = {}
        self._count_cache = (-1, 0)
        if embedders is not None:
            self._setup_spaces()

    # -- models ------------------------------------------------------------------------------------------------
    def _ensure_models(self) -> None:
        """Load the models now (blocking); raises the SgError that made loading fail."""
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
            except SgError as exc:
                self._model_state = ("failed", str(exc))
                raise
            self._models_loaded = True
            self._model_state = ("ready", "")

    def load_models(self) -> tuple[str, str]:
        """Load the embedding models if they are enabled and not loaded yet (blocking; safe from any thread, e.g.
        to warm them in the background). Never raises for a model that cannot load: returns model_state()."""
        if self.settings.models.enabled and self._model_state[0] not in ("ready", "failed"):
            try:
                self._ensure_models()
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
        by_ident: dict[str, _Space] = {}
        for r in ROUTES:
            emb = self._embedders.get(r)
            if emb is None:
                continue
            if emb.ident not in by_ident:
                codec_name = self.settings.index.token_codec if emb.multi_vector else "fp32"
                name = _space_name(emb.ident)
                self.store.ensure_space(name, emb.ident, emb.dim, emb.multi_vector, codec_name)
                codec = None
                if emb.multi_vector and codec_name != "pq":
                    codec = get_codec(codec_name)
                elif emb.multi_vector:  # product quantisation: codebooks trained on the first batch, kept in the store
                    book = self.store.spaces()[name]["codebook"]
                    codec = get_codec("pq", codebook=book) if book else None
                by_ident[emb.ident] = _Space(name, emb, [], codec)
            by_ident[emb.ident].routes.append(r)
        self.spaces = {s.name: s for s in by_ident.values()}
        for sp in self.spaces.values():
            self._load_ann(sp)

    def _drop_space(self, sp: _Space, exc: Exception) -> None:
        """A model that fails to load stops serving; its routes become lexical-only, said once."""
        if self.spaces.pop(sp.name, None) is not None:
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

    # -- lexical manifest --------------------------------------------------------------------------------------
    def _lexical_fingerprint(self) -> str:
        s = self.settings.index
        return (f"format={FORMAT_VERSION};chunker={chunking.CHUNKER_VERSION};tokenizer={tokenize.tokenizer_id()};"
                f"max_chunk_lines={s.max_chunk_lines};window={s.window_lines}/{s.window_overlap};"
                f"max_chunks={s.max_chunks_per_file}")

    def _check_lexical_manifest(self) -> None:
        fp = self._lexical_fingerprint()
        if self.store.get_meta("lexical") != fp:
            # Chunking or tokenizing changed: every file must be re-read (vectors keyed by content survive).
            with self.store.write() as con:
                con.execute("DELETE FROM chunks_fts")
                con.execute("DELETE FROM chunks")
                con.execute("DELETE FROM files")
                self.store._set_meta(con, "lexical", fp)
                self.store._set_meta(con, "gc_hold", "1")  # until every file is read again (_collect_garbage)

    # -- indexing ----------------------------------------------------------------------------------------------
    def index(self, progress: Progress | None = None, cancel: threading.Event | None = None,
              embed: bool = True) -> IndexReport:
        """Bring the store up to date with the workspace: lexical first (fast), then embeddings (resumable)."""
        t0 = time.perf_counter()
        report = IndexReport()
        with self._writer:
            stored = self.store.files()
            entries: list[FileEntry] = []
            skips: list[Skip] = []
            for item in discover.walk(self.root, self.settings.index):
                if isinstance(item, Skip):
                    skips.append(item)
                elif not self._is_index_path(item.path):
                    entries.append(item)
            report.files = len(entries)
            seen = {e.path for e in entries}
            todo = [e for e in entries
                    if e.path not in stored or (stored[e.path].size, stored[e.path].mtime_ns) != (e.size, e.mtime_ns)]
            gone = [p for p in stored if p not in seen]
            with self.store.write() as con:
                removed = [i for p in gone for i in self.store.delete_file(con, p)]
            report.removed = len(gone)
            self._sync_ann(removed, [])
            dropped = len(removed)
            for start in range(0, len(todo), _FILE_BATCH):
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
                batch = todo[start:start + _FILE_BATCH]
                changed, n = self._write_files(batch, stored, skips)
                report.changed += changed
                dropped += n
                if progress:
                    progress("files", min(start + _FILE_BATCH, len(todo)), len(todo))
            if progress and not todo:
                progress("files", 0, 0)
            with self.store.write() as con:
                self.store.replace_skips(con, skips)
            report.skipped = len(skips)
            if embed and not report.cancelled and self.settings.models.enabled:
                self._ensure_models()
                report.embedded, report.cancelled = self._embed_missing(progress, cancel)
            report.chunks = self.store.counts()["chunks"]
            self._collect_garbage(dropped, complete=not report.cancelled)
            self._save_ann()
        report.seconds = time.perf_counter() - t0
        return report

    def _collect_garbage(self, dropped: int, complete: bool = False) -> None:
        """Vectors are keyed by content, so an edited function leaves the vectors of its old text behind. Once the
        chunks dropped since the last collection reach GC_SHARE of the index (and at least GC_MIN), delete every
        vector no chunk refers to: the store stays bounded however often files are saved. Not after a lexical
        reset until a complete index has read every file again: till then the vectors of files not yet re-read
        are still wanted. Searches are unaffected: each reads one committed snapshot."""
        hold = self.store.get_meta("gc_hold") == "1"
        if hold and complete:
            self.store.set_meta("gc_hold", "0")
            hold = False
        before = int(self.store.get_meta("dropped_since_gc") or 0)
        dead = before + dropped
        if not hold and dead >= max(GC_MIN, GC_SHARE * self._chunk_count()):
            self.store.gc_vectors()
            dead = 0
        if dead != before:  # every write bumps the generation: none when nothing changed (the ANN file stays current)
            self.store.set_meta("dropped_since_gc", str(dead))

    def _is_index_path(self, rel: str) -> bool:
        try:
            return (self.root / rel).resolve().is_relative_to(self.index_dir.resolve())
        except OSError:
            return False

    def _prepare(self, entry: FileEntry, stored_hash: str | None, buffer: str | None = None):
        """Read (or take the editor's unsaved `buffer`) and chunk one file outside the write transaction. Returns a
        Skip, 'same' or the rows to store."""
        text = discover.read_text(entry, self.settings.index) if buffer is None else \
            discover.buffer_text(entry, buffer, self.settings.index)
        if isinstance(text, Skip):
            return text
        fhash = discover.content_hash(text)
        if fhash == stored_hash:
            return "same"
        language = chunking.language_for(entry.path) or "text"
        chunks = chunking.chunk_file(entry.path, text, self.settings.index)  # PDFs arrive as "\f"-joined pages
        path_tokens = " ".join(tokenize.tokenize_path(entry.path))
        rows = []
        for c in chunks:
            body = c.text if not c.doc or c.doc in c.text else f"{c.doc}\n{c.text}"
            chash = hashlib.blake2b(f"{c.path}\0{c.symbol}\0{body}".encode("utf-8", "replace"),
                                    digest_size=16).hexdigest()
            rows.append((c, route.route_chunk(c.text, c.language), chash,
                         (path_tokens, " ".join(tokenize.tokenize_symbol(c.symbol)), " ".join(tokenize.tokenize(body)))))
        return fhash, language, rows

    def _write_files(self, batch: list[FileEntry], stored: dict, skips: list[Skip],
                     buffers: dict[str, str] | None = None) -> tuple[int, int]:
        """Read, chunk and store a batch of files in one transaction: (files changed, chunk rows dropped)."""
        prepared = []
        for e in batch:
            old = stored.get(e.path)
            try:
                res = self._prepare(e, old.hash if old else None, (buffers or {}).get(e.path))
            except Exception as exc:  # a chunker bug must not stop the index; record and go on
                res = Skip(e.path, "unreadable", f"internal error while chunking: {exc!r}")
            prepared.append((e, res))
        changed = 0
        removed: list[int] = []
        added: list[int] = []
        with self.store.write() as con:
            for e, res in prepared:
                if isinstance(res, Skip):
                    skips.append(res)
                    removed += self.store.delete_file(con, e.path)
                elif res == "same":
                    self.store.touch_file(con, e.path, e.size, e.mtime_ns)
                else:
                    fhash, language, rows = res
                    gone, new = self.store.put_file(con, e.path, e.size, e.mtime_ns, fhash, language, rows)
                    removed += gone
                    added += new
                    changed += 1
        self._sync_ann(removed, added)
        return changed, len(removed)

    def update_files(self, paths: list[str], embed: bool = True, buffers: dict[str, str] | None = None) -> IndexReport:
        """Re-index just these workspace-relative paths (on save / file-watch events).

        `buffers` maps paths to an editor's unsaved text, indexed in place of the file's bytes (the file must still
        pass the walk's rules). Such a file is stored with mtime UNSAVED_MTIME, so the next scan that finds it
        reads the disk again: an editor closed without saving, or a server killed, never leaves unsaved text in
        the index for longer than that."""
        t0 = time.perf_counter()
        report = IndexReport()
        buffers = buffers or {}
        paths = list(dict.fromkeys([*paths, *buffers]))
        with self._writer:
            stored = self.store.files()
            entries, skips, gone = [], [], []
            for p in paths:
                try:
                    item = discover.check_file(self.root, p, self.settings.index)
                except BadQuery as exc:  # a watcher event for a path outside the workspace: ignore it
                    report.notes.append(str(exc))
                    continue
                if item is None:
                    gone.append(p)
                elif isinstance(item, Skip):
                    skips.append(item)
                    gone.append(item.path)
                elif not self._is_index_path(item.path):
                    entries.append(dataclasses.replace(item, mtime_ns=UNSAVED_MTIME) if item.path in buffers else item)
            removed: list[int] = []
            with self.store.write() as con:
                for p in gone:
                    ids = self.store.delete_file(con, p)
                    report.removed += bool(ids)
                    removed += ids
            self._sync_ann(removed, [])
            report.changed, dropped = self._write_files(entries, stored, skips, buffers)
            with self.store.write() as con:
                self.store.replace_skips(con, skips, paths=paths)
            report.files, report.skipped = len(entries), len(skips)
            if embed and self.settings.models.enabled:
                self._ensure_models()
                report.embedded, _ = self._embed_missing(None, None)
            self._collect_garbage(len(removed) + dropped)
        report.seconds = time.perf_counter() - t0
        return report

    # -- embeddings --------------------------------------------------------------------------------------------
    def _embed_missing(self, progress: Progress | None, cancel: threading.Event | None) -> tuple[int, bool]:
        done = 0
        for sp in list(self.spaces.values()):
            total = self.store.count_missing(sp.name, sp.routes)
            n = 0
            while True:
                if cancel is not None and cancel.is_set():
                    return done, True
                todo = self.store.missing_vectors(sp.name, sp.routes, _EMBED_BATCH)
                if not todo:
                    break
                texts = [render_for_embedding(row, self.settings.index.embed_render) for _, row in todo]
                try:
                    out = sp.embedder.embed_documents(texts)
                except ModelError as exc:
                    self._drop_space(sp, exc)
                    break
                if sp.embedder.multi_vector and sp.codec is None:
                    sp.codec = PQCodec.train(np.concatenate([v for v in out if len(v)]), seed=0)
                    self.store.set_codebook(sp.name, sp.codec.to_bytes())
                rows = []
                for (h, _), v in zip(todo, out if sp.embedder.multi_vector else list(out)):
                    if sp.embedder.multi_vector:
                        pooled = unit(v.mean(axis=0)) if len(v) else np.zeros(sp.embedder.dim, np.float32)
                        rows.append((h, pooled.tobytes(), sp.codec.encode(v)))
                    else:
                        rows.append((h, np.asarray(v, np.float32).tobytes(), None))
                with self.store.write() as con:
                    self.store.put_vectors(con, sp.name, rows)
                self._add_to_ann(sp, [h for h, _ in todo])
                n += len(todo)
                done += len(todo)
                if progress:
                    progress(f"embed:{sp.embedder.name}", n, total)
        return done, False

    # -- ANN maintenance ---------------------------------------------------------------------------------------
    def _ann_path(self, sp: _Space) -> Path:
        return self.index_dir / f"{sp.name}.hnsw"

    def _live_vectors(self, sp: _Space, ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        pairs = list(self.store.vectors_for_chunks(sp.name, sp.routes, ids=ids))
        dim = sp.embedder.dim
        if not pairs:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        ids_arr = np.fromiter((p[0] for p in pairs), np.int64, len(pairs))
        vecs = np.frombuffer(b"".join(p[1] for p in pairs), np.float32).reshape(len(pairs), dim)
        return ids_arr, vecs

    def _build_ann(self, sp: _Space) -> AnnIndex:
        s = self.settings.index
        ids, vecs = self._live_vectors(sp)
        return AnnIndex.build(sp.embedder.dim, ids, vecs, m=s.hnsw_m, ef_construction=s.hnsw_ef_construction,
                              ef_search=s.hnsw_ef_search)

    def _load_ann(self, sp: _Space) -> None:
        with sp.lock:
            ann = AnnIndex.load(self._ann_path(sp), self.store.generation, sp.embedder.dim)
            sp.ann = ann if ann is not None else self._build_ann(sp)
            sp.dirty = ann is None

    def _add_to_ann(self, sp: _Space, hashes: list[str]) -> None:
        with self.store.read() as con:
            marks = ",".join("?" * len(hashes))
            ids = [r[0] for r in con.execute(f"SELECT id FROM chunks WHERE hash IN ({marks})", hashes)]
        ids_arr, vecs = self._live_vectors(sp, ids)
        with sp.lock:
            if sp.ann is None:
                sp.ann = self._build_ann(sp)
            elif len(ids_arr):
                sp.ann.add(ids_arr, vecs)
            sp.dirty = True

    def _sync_ann(self, removed: list[int], added: list[int]) -> None:
        """Deleted chunks leave every ANN; new chunks whose content already has a vector join it at once."""
        for sp in self.spaces.values():
            with sp.lock:
                if sp.ann is None:
                    continue
                if removed:
                    sp.ann.remove(np.asarray(removed, np.int64))
                    sp.dirty = True
                ids, vecs = self._live_vectors(sp, added) if added else (np.zeros(0), None)
                if len(ids):
                    sp.ann.add(ids, vecs)
                    sp.dirty = True
                if sp.ann.needs_compaction():
                    sp.ann = self._build_ann(sp)

    def _save_ann(self) -> None:
        gen = self.store.generation
        for sp in self.spaces.values():
            with sp.lock:
                if sp.ann is not None:
                    sp.ann.save(self._ann_path(sp), gen)
                    sp.dirty = False

    # -- search ------------------------------------------------------------------------------------------------
    def prepare_queries(self, texts: list[str], doc_query: bool = False) -> None:
        """Embed many queries in batches up front (evaluation): later searches for them skip the encoder."""
        self._ensure_models()
        for sp in list(self.spaces.values()):
            try:
                out = sp.embedder.embed_documents(texts) if doc_query else sp.embedder.embed_queries(texts)
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
            raise BadQuery(f"the query has {len(query)} characters; the limit is {self.settings.search.max_query_chars}")
        self._check_limit(k)
        paths = scope_patterns(paths, [self.root])[0]
        notes: list[str] = []
        mode = self._usable_mode(self._check_mode(mode), wait_for_models, notes)
        weights = route.route_query(query)
        hits, rank_notes = self._rank(query_text=query, q_tokens=tokenize.tokenize_query(query), weights=weights,
                                      mode=mode, k=k, paths=paths, doc_query=False)
        return SearchResult(hits, mode, (time.perf_counter() - t0) * 1000, weights, self.model_names(),
                            notes + rank_notes)

    def chunk_at(self, path: str, line: int, col: int | None = None) -> ChunkInfo | None:
        """The chunk a position falls in: the smallest chunk that encloses `line` (1-based) and, when given, `col`
        (0-based code-point column), functions and methods first among equals; None when no chunk does.
        `path` is workspace-relative or absolute inside the workspace."""
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
        return min(rows, key=lambda r: (r.end_line - r.start_line, r.kind not in ("function", "method")))

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
        hits, rank_notes = self._rank(query_text=text, q_tokens=q_tokens, weights=weights, mode=mode, k=k + 8,
                                      paths=None, doc_query=True, name_boost=False)
        if exclude:
            hits = [h for h in hits if h.chunk_id != exclude[2] and not (h.path == exclude[0] and h.symbol
                                                                          and h.symbol == exclude[1])]
        return SearchResult(hits[:k], mode, (time.perf_counter() - t0) * 1000, weights, self.model_names(),
                            notes + rank_notes)

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

    @staticmethod
    def _path_ok(path: str, patterns: list[str] | None) -> bool:
        if not patterns:
            return True
        return any(fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or path == pat for pat in patterns)

    def _rank(self, *, query_text: str, q_tokens: list[str], weights: dict[str, float], mode: str, k: int,
              paths: list[str] | None, doc_query: bool, name_boost: bool = True) -> tuple[list[Hit], list[str]]:
        s = self.settings.search
        notes: list[str] = []
        n_cand = max(s.candidates, k * 3) * (4 if paths else 1)
        components: dict[str, dict[int, float]] = {}
        comp_weights: dict[str, float] = {}
        qvecs: dict[str, np.ndarray] = {}

        # Semantic weight per space: the query's route weights, for routes that have a model. A route without one
        # goes to BM25 when the query reads as that route (Japanese with no CJK model); the small cross-language
        # weight an English query gives the cjk route is dropped instead: BM25 cannot reach Japanese text with
        # English words, and that weight would nearly double BM25's share of every English query.
        space_w: dict[str, float] = {}
        unserved = dropped = 0.0
        own = max(weights, key=weights.__getitem__) if weights else None
        for r, w in weights.items():
            sp = next((x for x in self.spaces.values() if r in x.routes), None)
            if sp is None and r == own:
                unserved += w
            elif sp is None:
                dropped += w
            else:
                space_w[sp.name] = space_w.get(sp.name, 0.0) + w
        if 0 < dropped < 1:
            space_w = {name: w / (1 - dropped) for name, w in space_w.items()}
        if mode != "lexical" and not self.spaces:
            notes.append("no embedding model is available: lexical results only")
            mode = "lexical"
        elif mode == "semantic" and unserved >= 0.999:
            notes.append("no model can read this query's language: lexical results only")
            mode = "lexical"

        # Path and symbol columns carry identifiers: they help code queries and only add noise to CJK prose.
        cjk = weights.get("cjk", 0.0)
        cols = (1.0 - cjk, 2.0 * (1.0 - cjk), 1.0)
        lw = s.similar_lexical_weight if doc_query else s.lexical_weight
        with self.store.read() as con:
            lex_tokens = self._prune_common(q_tokens, con, budget=not doc_query) if mode != "semantic" else q_tokens
            if mode in ("hybrid", "lexical"):
                components["lexical"] = self.store.lexical(lex_tokens, n_cand, cols, con=con)
                comp_weights["lexical"] = 1.0 if mode == "lexical" else lw + (1 - lw) * unserved
            if mode in ("hybrid", "semantic"):
                for name, w in space_w.items():
                    if w <= 0:
                        continue
                    sp = self.spaces[name]
                    try:
                        sims, qvecs[name] = self._semantic(sp, query_text, n_cand, doc_query, con)
                    except ModelError as exc:
                        self._drop_space(sp, exc)
                        notes.append(f"{sp.embedder.name} failed to load: lexical results for its routes")
                        comp_weights["lexical"] = comp_weights.get("lexical", 0.0) + w
                        continue
                    if sims:
                        # A space that holds only a sliver of the corpus (an English LICENSE in a Japanese doc set)
                        # would otherwise crown its few members: weigh it by the share of chunks it can rank.
                        coverage = min(1.0, len(sp.ann) / max(self._chunk_count(), 1)) if mode == "hybrid" else 1.0
                        components[f"sem:{sp.embedder.name}"] = sims
                        comp_weights[f"sem:{sp.embedder.name}"] = w * (1 - lw if mode == "hybrid" else 1) * coverage
            cand = set().union(*components.values()) if components else set()
            if len(components) > 1:
                self._fill_in(components, cand, lex_tokens, cols, qvecs, con)
            rows = self.store.chunks_by_id(cand, con=con, text=False)  # text only for the hits returned
            # everything below reads inside the same transaction: a save meanwhile cannot empty a snippet
            if paths:
                rows = {i: r for i, r in rows.items() if self._path_ok(r.path, paths)}
            if not rows:
                return [], notes
            for comp in components.values():
                for i in list(comp):
                    if i not in rows:
                        del comp[i]
            # A component with no candidates (e.g. a space with no vectors in this corpus) must not dilute others.
            components = {k: v for k, v in components.items() if v}
            if s.fusion == "rrf":
                fused = score.fuse_rrf(components, comp_weights, k=s.rrf_k)
            else:
                fused = score.fuse_linear(components, comp_weights)
            wants_tests = score.query_mentions_tests(query_text) if not doc_query else True
            terms = score.name_terms(q_tokens) if name_boost and s.name_boost > 0 else ()
            demote = s.demote_tests and not wants_tests
            factor = {cid: 0.9 if demote and score.is_test_path(rows[cid].path, rows[cid].symbol) else 1.0
                      for cid in fused if cid in rows}
            # The name boost adds at most s.name_boost: only candidates that could reach the top k with it get it
            # computed (it is most of the ranking time on large indexes).
            bound = -math.inf
            if terms:
                seen: set[tuple] = set()
                for cid in sorted(factor, key=lambda c: -fused[c].score * factor[c]):
                    row = rows[cid]
                    seen.add((row.path, row.symbol or row.start_line))
                    if len(seen) >= 2 * k:
                        bound = fused[cid].score * factor[cid]
                        break
            hits: list[Hit] = []
            for cid, f in factor.items():
                row, fz = rows[cid], fused[cid]
                total, parts = fz.score, dict(fz.parts)
                if terms and (total + s.name_boost) * f >= bound:
                    nb = score.chunk_name_boost(terms, row.path, row.symbol)
                    if nb:
                        parts["name"] = s.name_boost * nb
                        total += s.name_boost * nb
                if f < 1.0:
                    parts["test-demotion"] = -0.1 * total
                    total *= f
                sem = [(v, key) for key, v in parts.items() if key.startswith("sem:")]
                hits.append(Hit(chunk_id=cid, path=row.path, symbol=row.symbol, kind=row.kind, language=row.language,
                                start_line=row.start_line, end_line=row.end_line, start_col=row.start_col,
                                end_col=row.end_col, score=float(total), snippet="",
                                space=max(sem)[1][4:] if sem else "", components=parts))
            hits.sort(key=lambda h: (-h.score, h.path, h.start_line))
            top = score.dedupe(hits)[:k]
            full = self.store.chunks_by_id([h.chunk_id for h in top], con=con)  # the state the ranking saw
            for hit in top:
                if hit.chunk_id in full:
                    hit.snippet = _snippet(full[hit.chunk_id])
            return top, notes

    def _prune_common(self, tokens: list[str], con, budget: bool = True) -> list[str]:
        """On an index of PRUNE_FROM_CHUNKS chunks or more, leave out of BM25 the query words found in more than
        search.max_token_share of the chunks and (search queries, not code snippets) the commonest words beyond a
        total of POSTING_BUDGET x chunks; the two rarest words always stay, and CJK words are never left out.

        Common words carry little IDF (log 3 at a quarter of the chunks) but add up: in a docstring-sentence query,
        "the", "value", "return" outvote the one rare word that names the function. Dev sets, lexical MRR@10
        without -> with: repo-click 0.189 -> 0.238, repo-pytest 0.261 -> 0.297, cosqa 0.319 -> 0.317; hybrid
        repo-click 0.595 -> 0.626. Japanese particles and bigrams are common and still help (ja 0.745; 0.695 when
        pruned), so CJK words stay. Posting lists are also most of BM25's time on a 100K-chunk index. On
        find-similar (clones) the budget would cost 0.06: not used there."""
        share, n = self.settings.search.max_token_share, self._chunk_count()
        latin = [t for t in tokens if not tokenize.has_cjk(t)]  # the words that may leave
        if n < PRUNE_FROM_CHUNKS or len(latin) <= 2 or share >= 1.0:
            return tokens
        df = self.store.doc_freqs(latin, con)
        kept, volume = set(), 0
        for i, t in enumerate(sorted(latin, key=df.__getitem__)):  # rarest first, within the posting budget
            if i >= 2 and (df[t] > share * n or (budget and volume + df[t] > POSTING_BUDGET * n)):
                break
            kept.add(t)
            volume += df[t]
        return [t for t in tokens if t in kept or t not in latin]

    def warm(self) -> None:
        """For long-lived use (the language server, benches): keep the lexical postings in memory too."""
        self.store.warm_lexical()

    def _chunk_count(self) -> int:
        gen = self.store.generation
        if self._count_cache[0] != gen:
            self._count_cache = (gen, self.store.counts()["chunks"])
        return self._count_cache[1]

    def _semantic(self, sp: _Space, text: str, n: int, doc_query: bool, con) -> tuple[dict[int, float], np.ndarray]:
        """Candidates from the space's ANN (exact MaxSim rerank for multi-vector spaces) and the pooled query."""
        emb = sp.embedder
        cached = self._query_vectors.get((sp.name, doc_query, text))
        out = [cached] if cached is not None else \
            emb.embed_documents([text]) if doc_query else emb.embed_queries([text])
        if emb.multi_vector:
            qtok = out[0]
            pooled = unit(qtok.mean(axis=0))
        else:
            pooled = np.asarray(out[0], np.float32)
        with sp.lock:
            if sp.ann is None or len(sp.ann) == 0:
                return {}, pooled
            ids, sims = sp.ann.search(pooled, n)
        if not emb.multi_vector:
            return {int(i): float(v) for i, v in zip(ids, sims)}, pooled
        blobs = self.store.token_blobs(sp.name, [int(i) for i in ids], con=con)
        order = [int(i) for i in ids if int(i) in blobs]
        if sp.codec is None or not order:
            return {int(i): float(v) for i, v in zip(ids, sims)}, pooled
        flat, counts = sp.codec.decode_many([blobs[i] for i in order], emb.dim)
        ms = score.maxsim_packed(qtok, flat, counts) / max(len(qtok), 1)
        return {i: float(v) for i, v in zip(order, ms)}, pooled

    def _fill_in(self, components: dict[str, dict[int, float]], cand: set[int], q_tokens: list[str],
                 cols: tuple[float, float, float], qvecs: dict[str, np.ndarray], con) -> None:
        """Give every candidate its exact score in every component, so fusion never guesses a missing one."""
        for key, comp in components.items():
            missing = [i for i in cand if i not in comp]
            if not missing:
                continue
            if key == "lexical":
                comp.update(self.store.lexical(q_tokens, 0, cols, con=con, ids=missing))
            else:
                sp = next(s for s in self.spaces.values() if f"sem:{s.embedder.name}" == key)
                if sp.embedder.multi_vector:
                    continue  # MaxSim for off-list candidates would need their tokens: left at 0
                with sp.lock:  # the ANN holds every live pooled vector in memory: no store round trip
                    if sp.ann is None:
                        continue
                    ids, vecs = sp.ann.lookup(missing)
                if len(ids):
                    comp.update({int(i): float(v) for i, v in zip(ids, vecs @ qvecs[sp.name])})

    # -- status ------------------------------------------------------------------------------------------------
    def status(self) -> dict:
        """What is indexed: files, chunks, skipped, vectors per model, the models, the model state, the index
        path, and any settings problems found when the engine read the workspace's settings itself."""
        counts = self.store.counts()
        vectors = {}
        for sp in self.spaces.values():
            vectors[sp.embedder.name] = len(sp.ann) if sp.ann is not None else 0
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
        return self.store.lexical(tokenize.tokenize_query(query), k)

    def check(self) -> list[str]:
        """Integrity problems (empty when healthy): SQLite's own check, table agreement, ANN vs store."""
        self._ensure_models()
        problems = self.store.integrity()
        for sp in self.spaces.values():
            with sp.lock:
                live = set(self._live_vectors(sp)[0].tolist())
                in_ann = set(sp.ann.live_ids().tolist()) if sp.ann is not None else set()
                if live != in_ann:
                    problems.append(f"{sp.name}: ANN holds {len(in_ann)} chunks, store has vectors for {len(live)}")
        return problems

    def skipped(self) -> list[Skip]:
        return self.store.skipped()

    def close(self) -> None:
        with self._writer:
            if any(getattr(sp, "dirty", False) for sp in self.spaces.values()):
                self._save_ann()
            self.store.close()


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes in argv
        raise BadQuery("the query is not valid text (undecodable bytes)") from None


def _snippet(row: ChunkRow, lines: int = 6, width: int = 400) -> str:
    out = [ln for ln in row.text.splitlines() if ln.strip()][:lines]
    return "\n".join(out)[:width]
