"""Push a local store into Qdrant incrementally: new or changed files only, stale points deleted by file, and a
record in the store of what reached which target, so a push killed at any moment resumes without duplicates.

Order per batch of files: upsert the points not there yet (ids are stable, so a repeat is harmless), delete the
file's other points (an older version), then record (path, file hash) for the target. A kill before the record
leaves the file to push again; nothing is recorded that Qdrant does not hold.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...codec import Codec
from ...store import ChunkRow, Store
from ..bm25 import varints
from .index import ChunkPoint, QdrantIndex, SpaceSpec, point_id, sparse_doc

_TABLE = """CREATE TABLE IF NOT EXISTS qdrant_pushed (
    target TEXT NOT NULL, path TEXT NOT NULL, file_hash TEXT NOT NULL, PRIMARY KEY (target, path)) WITHOUT ROWID"""
FILE_BATCH = 50


@dataclass
class PushSpace:
    """A store space as pushed: its Qdrant shape, the routes it serves, and the codec of its token blobs."""

    spec: SpaceSpec
    routes: list[str]
    codec: Codec | None = None


@dataclass
class PushReport:
    files: int = 0
    points: int = 0
    skipped_points: int = 0  # already in Qdrant (a resume, or unchanged chunks of a changed file)
    deleted_files: int = 0
    waiting: int = 0  # files whose chunks still lack vectors: pushed by a later run
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)


def pushed(store: Store, target: str) -> dict[str, str]:
    """What this store has pushed to `target`: path -> "file hash:chunker fingerprint:spaces"."""
    with store.write() as con:
        con.execute(_TABLE)
    rows = store.connection().execute("SELECT path, file_hash FROM qdrant_pushed WHERE target = ?", (target,))
    return dict(rows.fetchall())


def _lexical_cols(store: Store, ids: list[int]) -> dict[int, tuple[str, str, str]]:
    out = {}
    con = store.connection()
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        for rowid, *cols in con.execute(f"SELECT rowid, path, symbol, body FROM chunks_fts WHERE rowid IN "
                                        f"({','.join('?' * len(part))})", part):
            out[rowid] = tuple(cols)
    return out


def spaces_signature(spaces: Sequence[PushSpace]) -> str:
    """Which spaces a point was pushed with: a point pushed before a model loaded must be pushed again."""
    return hashlib.blake2b(",".join(sorted(p.spec.name for p in spaces)).encode(), digest_size=4).hexdigest()


def avg_length(store: Store) -> float:
    """The average chunk length in words over all columns, as FTS5's bm25() uses it."""
    con = store.connection()
    row = con.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
    values = varints(row[0]) if row and row[0] else []
    if len(values) >= 4 and values[0]:
        return sum(values[1:4]) / values[0]
    return 1.0


def build_points(store: Store, rows: list[ChunkRow], spaces: Sequence[PushSpace], repository: str,
                 avgdl: float) -> tuple[list[ChunkPoint], bool]:
    """The points for these chunks, and whether every chunk had its vectors (else the file must wait)."""
    ids = [r.id for r in rows]
    cols = _lexical_cols(store, ids)
    vecs: dict[str, dict[int, np.ndarray]] = {}
    toks: dict[str, dict[int, np.ndarray]] = {}
    complete = True
    for sp in spaces:
        dim = sp.spec.dim
        vecs[sp.spec.name] = {cid: np.frombuffer(blob, np.float32) for cid, blob in
                              store.vectors_for_chunks(sp.spec.name, sp.routes, ids=ids)}
        if sp.spec.multi and sp.codec is not None:
            blobs = store.token_blobs(sp.spec.name, ids)
            order = list(blobs)
            if order:
                flat, counts = sp.codec.decode_many([blobs[i] for i in order], dim)
                bounds = np.concatenate([[0], np.cumsum(counts)])
                toks[sp.spec.name] = {cid: flat[bounds[j]:bounds[j + 1]] for j, cid in enumerate(order)}
        served = [r.id for r in rows if r.route in sp.routes]
        if any(cid not in vecs[sp.spec.name] for cid in served):
            complete = False
    points: dict[str, ChunkPoint] = {}
    for r in rows:
        pid = point_id(repository, r.path, r.hash)
        vectors: dict = dict(sparse_doc(cols.get(r.id, ("", "", "")), avgdl))
        for sp in spaces:
            v = vecs[sp.spec.name].get(r.id)
            if v is None:
                continue
            vectors[sp.spec.candidates] = v
            t = toks.get(sp.spec.name, {}).get(r.id)
            if sp.spec.multi and t is not None and len(t):
                vectors[sp.spec.name] = np.asarray(t, np.float32)
        points[pid] = ChunkPoint(pid, {
            "repository": repository, "path": r.path, "symbol": r.symbol, "kind": r.kind, "language": r.language,
            "start_line": r.start_line, "end_line": r.end_line, "start_col": r.start_col, "end_col": r.end_col,
            "route": r.route, "hash": r.hash, "text": r.text, "spaces": spaces_signature(spaces)}, vectors)
    return list(points.values()), complete  # a chunk repeated verbatim in one file is one point


def push(store: Store, index: QdrantIndex, target: str, spaces: Sequence[PushSpace], *, repository: str,
         progress: Callable[[str, int, int], None] | None = None, cancel: threading.Event | None = None,
         files_per_batch: int = FILE_BATCH, only: set[str] | None = None) -> PushReport:
    """Bring `index` up to date with the store for `repository`; `target` names the destination in the record.
    With `only`, just those paths (the files an indexing batch touched)."""
    report = PushReport()
    done = pushed(store, target)
    files = store.files()
    if only is not None:
        done = {p: h for p, h in done.items() if p in only}
        files = {p: f for p, f in files.items() if p in only}
    gone = [p for p in done if p not in files]
    for p in gone:
        index.delete_file(p, repository=repository)
        with store.write() as con:
            con.execute("DELETE FROM qdrant_pushed WHERE target = ? AND path = ?", (target, p))
    report.deleted_files = len(gone)
    # the record holds the file hash, the chunker's fingerprint (a new chunker re-chunks unchanged files) and
    # the spaces pushed (a model that loads later adds vectors to every point)
    fp = hashlib.blake2b((store.get_meta("lexical") or "").encode(), digest_size=4).hexdigest()
    sig = spaces_signature(spaces)
    version = {p: f"{f.hash}:{fp}:{sig}" for p, f in files.items()}
    todo = sorted(p for p in files if done.get(p) != version[p])
    avgdl = avg_length(store)
    for start in range(0, len(todo), files_per_batch):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        batch = todo[start:start + files_per_batch]
        ready: list[tuple[str, str, list[str]]] = []
        points: list[ChunkPoint] = []
        for p in batch:
            rows = store.chunks_of_file(p)
            fhash = version[p]
            pts, complete = build_points(store, rows, spaces, repository, avgdl)
            if not complete:
                report.waiting += 1
                continue
            ready.append((p, fhash, [q.id for q in pts]))
            points += pts
        have = index.existing([q.id for q in points], sig)
        new = [q for q in points if q.id not in have]
        index.upsert(new)
        for p, _, keep in ready:
            index.delete_file(p, keep=keep, repository=repository)
        index.flush()
        with store.write() as con:
            con.executemany("INSERT OR REPLACE INTO qdrant_pushed(target, path, file_hash) VALUES (?, ?, ?)",
                            [(target, p, h) for p, h, _ in ready])
        report.files += len(ready)
        report.points += len(new)
        report.skipped_points += len(points) - len(new)
        if progress:
            progress("push", min(start + files_per_batch, len(todo)), len(todo))
    return report
