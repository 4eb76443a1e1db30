"""The indexer: brings the store up to date with a workspace (the lexical pass: walk, read, chunk, store), then
embeds what has no vector yet (resumable: vectors are keyed by content), keeping the backend in step after every
committed batch and collecting the vectors no chunk needs any more."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import chunk as chunking
from . import discover, route, score, tokenize
from .backends.base import Backend
from .codec import PQCodec
from .embed.render import render_for_embedding
from .errors import BadQuery, ModelError
from .records import FileEntry, Progress, Skip
from .settings import IndexSettings
from .spaces import Space
from .store import Store

FORMAT_VERSION = 1
FILE_BATCH = 200
EMBED_BATCH = 128  # chunks per embed call and per commit (a cancel is seen between two)
# Chunks read at a time and sorted by length before they are cut into EMBED_BATCHes: a model batch is as wide as
# its longest text, and sorting 128 chunks at a time left ~20% of the encoder's work on padding (the 39
# repo-search repositories: token counts of every chunk, batches of 32), 1024 at a time ~3%.
EMBED_WINDOW = 1024
UNSAVED_MTIME = -1  # the mtime stored for a file indexed from an editor's unsaved text: never equal to the disk's
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


class Indexer:
    """Writes one workspace's store. One writer at a time: the caller (Engine) holds its writer lock around
    index() and update_files(). `spaces` returns the spaces in use now; `load_models` loads them (raises
    SgError); `drop_space` gives up a space whose model failed while embedding."""

    def __init__(self, root: Path, index_dir: Path, settings: IndexSettings, models_enabled: bool, store: Store,
                 backend: Backend, spaces: Callable[[], dict[str, Space]], load_models: Callable[[], None],
                 drop_space: Callable[[Space, Exception], None]):
        self.root, self.index_dir, self.settings, self.models_enabled = root, index_dir, settings, models_enabled
        self.store, self.backend = store, backend
        self.spaces, self.load_models, self.drop_space = spaces, load_models, drop_space

    # -- lexical manifest --------------------------------------------------------------------------------------
    def lexical_fingerprint(self) -> str:
        s = self.settings
        return (f"format={FORMAT_VERSION};chunker={chunking.CHUNKER_VERSION};tokenizer={tokenize.tokenizer_id()};"
                f"max_chunk_lines={s.max_chunk_lines};window={s.window_lines}/{s.window_overlap};"
                f"max_chunks={s.max_chunks_per_file}")

    def check_lexical_manifest(self) -> None:
        fp = self.lexical_fingerprint()
        if self.store.get_meta("lexical") != fp:
            # Chunking or tokenizing changed: every file must be re-read (vectors keyed by content survive).
            with self.store.write() as con:
                con.execute("DELETE FROM chunks_fts")
                con.execute("DELETE FROM chunks")
                con.execute("DELETE FROM files")
                self.store._set_meta(con, "lexical", fp)
                self.store._set_meta(con, "gc_hold", "1")  # until every file is read again (collect_garbage)

    # -- indexing ----------------------------------------------------------------------------------------------
    def index(self, progress: Progress | None = None, cancel: threading.Event | None = None,
              embed: bool = True) -> IndexReport:
        """Bring the store up to date with the workspace: lexical first (fast), then embeddings (resumable)."""
        t0 = time.perf_counter()
        report = IndexReport()
        stored = self.store.files()
        entries: list[FileEntry] = []
        skips: list[Skip] = []
        for item in discover.walk(self.root, self.settings):
            if isinstance(item, Skip):
                skips.append(item)
            elif not self.is_index_path(item.path):
                entries.append(item)
        report.files = len(entries)
        seen = {e.path for e in entries}
        todo = [e for e in entries
                if e.path not in stored or (stored[e.path].size, stored[e.path].mtime_ns) != (e.size, e.mtime_ns)]
        gone = [p for p in stored if p not in seen]
        with self.store.write() as con:
            removed = [i for p in gone for i in self.store.delete_file(con, p)]
        report.removed = len(gone)
        self.backend.chunks_changed(removed, [])
        dropped = len(removed)
        for start in range(0, len(todo), FILE_BATCH):
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            batch = todo[start:start + FILE_BATCH]
            changed, n = self.write_files(batch, stored, skips)
            report.changed += changed
            dropped += n
            if progress:
                progress("files", min(start + FILE_BATCH, len(todo)), len(todo))
        if progress and not todo:
            progress("files", 0, 0)
        with self.store.write() as con:
            self.store.replace_skips(con, skips)
        report.skipped = len(skips)
        if embed and not report.cancelled and self.models_enabled:
            self.load_models()
            report.embedded, report.cancelled = self.embed_missing(progress, cancel)
        report.chunks = self.store.counts()["chunks"]
        self.collect_garbage(dropped, complete=not report.cancelled)
        self.backend.save()
        report.seconds = time.perf_counter() - t0
        return report

    def update_files(self, paths: list[str], embed: bool = True, buffers: dict[str, str] | None = None) -> IndexReport:
        """Re-index just these workspace-relative paths; `buffers`: see Engine.update_files."""
        t0 = time.perf_counter()
        report = IndexReport()
        buffers = buffers or {}
        paths = list(dict.fromkeys([*paths, *buffers]))
        stored = self.store.files()
        entries, skips, gone = [], [], []
        for p in paths:
            try:
                item = discover.check_file(self.root, p, self.settings)
            except BadQuery as exc:  # a watcher event for a path outside the workspace: ignore it
                report.notes.append(str(exc))
                continue
            if item is None:
                gone.append(p)
            elif isinstance(item, Skip):
                skips.append(item)
                gone.append(item.path)
            elif not self.is_index_path(item.path):
                entries.append(dataclasses.replace(item, mtime_ns=UNSAVED_MTIME) if item.path in buffers else item)
        removed: list[int] = []
        with self.store.write() as con:
            for p in gone:
                ids = self.store.delete_file(con, p)
                report.removed += bool(ids)
                removed += ids
        self.backend.chunks_changed(removed, [])
        report.changed, dropped = self.write_files(entries, stored, skips, buffers)
        with self.store.write() as con:
            self.store.replace_skips(con, skips, paths=paths)
        report.files, report.skipped = len(entries), len(skips)
        if embed and self.models_enabled:
            self.load_models()
            report.embedded, _ = self.embed_missing(None, None)
        self.collect_garbage(len(removed) + dropped)
        report.seconds = time.perf_counter() - t0
        return report

    def collect_garbage(self, dropped: int, complete: bool = False) -> None:
        """Vectors are keyed by content, so an edited function leaves the vectors of its old text behind. Once the
        chunks dropped since the last collection reach GC_SHARE of the index (and at least GC_MIN), delete every
        vector no chunk refers to: the store stays bounded however often files are saved. Not after a lexical
        reset until a complete index has read every file again: till then the vectors of files not yet re-read
        are still wanted. Searches are unaffected: each reads one committed snapshot, and the ANN never held
        vectors of chunks that are gone."""
        hold = self.store.get_meta("gc_hold") == "1"
        if hold and complete:
            self.store.set_meta("gc_hold", "0")
            hold = False
        before = int(self.store.get_meta("dropped_since_gc") or 0)
        dead = before + dropped
        if not hold and dead >= max(GC_MIN, GC_SHARE * self.store.chunk_count()):
            self.store.gc_vectors()
            dead = 0
        if dead != before:  # every write bumps the generation: none when nothing changed (the ANN file stays current)
            self.store.set_meta("dropped_since_gc", str(dead))

    def is_index_path(self, rel: str) -> bool:
        """Whether a workspace-relative path lies in this index's own folder (an index_dir inside the workspace)."""
        inside = self._index_rel
        return inside is not None and (rel == inside or rel.startswith(inside + "/"))

    @functools.cached_property
    def _index_rel(self) -> str | None:
        # resolved once: resolving every walked path cost 70-100 ms of a one-shot search on 1,500 files
        try:
            return self.index_dir.resolve().relative_to(self.root.resolve()).as_posix()
        except (ValueError, OSError):
            return None

    def prepare(self, entry: FileEntry, stored_hash: str | None, buffer: str | None = None):
        """Read (or take the editor's unsaved `buffer`) and chunk one file outside the write transaction. Returns a
        Skip, 'same' or the rows to store."""
        text = discover.read_text(entry, self.settings) if buffer is None else \
            discover.buffer_text(entry, buffer, self.settings)
        if isinstance(text, Skip):
            return text
        fhash = discover.content_hash(text)
        if fhash == stored_hash:
            return "same"
        language = chunking.language_for(entry.path) or "text"
        chunks = chunking.chunk_file(entry.path, text, self.settings)  # PDFs arrive as "\f"-joined pages
        path_tokens = " ".join(tokenize.tokenize_path(entry.path))
        rows = []
        for c in chunks:
            body = c.text if not c.doc or c.doc in c.text else f"{c.doc}\n{c.text}"
            chash = hashlib.blake2b(f"{c.path}\0{c.symbol}\0{body}".encode("utf-8", "replace"),
                                    digest_size=16).hexdigest()
            fts = (path_tokens, " ".join(tokenize.tokenize_symbol(c.symbol)), " ".join(tokenize.tokenize(body)))
            rows.append((c, route.route_chunk(c.text, c.language), chash, fts))
        return fhash, language, rows

    def write_files(self, batch: list[FileEntry], stored: dict, skips: list[Skip],
                    buffers: dict[str, str] | None = None) -> tuple[int, int]:
        """Read, chunk and store a batch of files in one transaction: (files changed, chunk rows dropped)."""
        prepared = []
        for e in batch:
            old = stored.get(e.path)
            try:
                res = self.prepare(e, old.hash if old else None, (buffers or {}).get(e.path))
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
        self.backend.chunks_changed(removed, added)
        return changed, len(removed)

    # -- embeddings --------------------------------------------------------------------------------------------
    def embed_missing(self, progress: Progress | None, cancel: threading.Event | None) -> tuple[int, bool]:
        """Embed every chunk whose content has no vector in its space yet, in batches, each committed and handed
        to the backend: (chunks embedded, cancelled)."""
        done = 0
        for sp in list(self.spaces().values()):
            total = self.store.count_missing(sp.name, sp.routes)
            n = 0
            while True:
                if cancel is not None and cancel.is_set():
                    return done, True
                window = self.store.missing_vectors(sp.name, sp.routes, EMBED_WINDOW)
                if not window:
                    break
                texts = [render_for_embedding(row, self.settings.embed_render) for _, row in window]
                order = sorted(range(len(window)), key=lambda i: -len(texts[i]))
                failed = False
                for start in range(0, len(order), EMBED_BATCH):
                    if cancel is not None and cancel.is_set():
                        return done, True
                    part = order[start:start + EMBED_BATCH]
                    todo = [window[i][0] for i in part]
                    failed = not self._embed_batch(sp, todo, [texts[i] for i in part])
                    if failed:
                        break
                    n += len(todo)
                    done += len(todo)
                    if progress:
                        progress(f"embed:{sp.embedder.name}", n, total)
                if failed:  # the model failed: its space was dropped
                    break
        return done, False

    def _embed_batch(self, sp: Space, hashes: list[str], texts: list[str]) -> bool:
        """Embed one batch, store its vectors and hand them to the backend; False when the model failed (its
        space is dropped)."""
        try:
            out = sp.embedder.embed_documents(texts)
        except ModelError as exc:
            self.drop_space(sp, exc)
            return False
        if sp.embedder.multi_vector and sp.codec is None:
            sp.codec = PQCodec.train(np.concatenate([v for v in out if len(v)]), seed=0)
            self.store.set_codebook(sp.name, sp.codec.to_bytes())
        rows: list[tuple[str, bytes, bytes | None]] = []
        for h, v in zip(hashes, out if sp.embedder.multi_vector else list(out)):
            if sp.embedder.multi_vector:
                assert sp.codec is not None  # trained above on the first batch
                pooled = score.pool(v) if len(v) else np.zeros(sp.embedder.dim, np.float32)
                rows.append((h, pooled.tobytes(), sp.codec.encode(v)))
            else:
                rows.append((h, np.asarray(v, np.float32).tobytes(), None))
        with self.store.write() as con:
            self.store.put_vectors(con, sp.name, rows)
        self.backend.vectors_added(sp.name, hashes)
        return True
