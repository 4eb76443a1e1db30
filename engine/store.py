"""SQLite store (WAL): files, chunks, FTS5 lexical index, skips, per-space vectors. The single source of truth.
BM25 over its FTS index is the backends' job (engine/backends/)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreError
from .records import Chunk, Skip

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    language TEXT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    start_col INTEGER NOT NULL,
    end_col INTEGER NOT NULL,
    text TEXT NOT NULL,
    doc TEXT NOT NULL,
    signature TEXT NOT NULL,
    route TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    path, symbol, body, tokenize = "unicode61 remove_diacritics 0 tokenchars '_'"
);
CREATE TABLE IF NOT EXISTS skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spaces (
    name TEXT PRIMARY KEY,
    ident TEXT NOT NULL,
    dim INTEGER NOT NULL,
    multi INTEGER NOT NULL,
    codec TEXT NOT NULL,
    codebook BLOB
);
CREATE TABLE IF NOT EXISTS vectors (
    space TEXT NOT NULL,
    hash TEXT NOT NULL,
    vec BLOB NOT NULL,
    tokens BLOB,
    PRIMARY KEY (space, hash)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class StoredFile:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True)
class ChunkRow:
    """A chunk as stored, with its id, content hash and route."""

    id: int
    path: str
    language: str
    kind: str
    symbol: str
    start_line: int
    end_line: int
    start_col: int
    end_col: int
    text: str
    doc: str
    signature: str
    route: str
    hash: str


_CHUNK_COLUMNS = ("c.id, f.path, c.language, c.kind, c.symbol, c.start_line, c.end_line, c.start_col, c.end_col, "
                  "c.text, c.doc, c.signature, c.route, c.hash")


class Store:
    """One SQLite file per workspace. Writers serialise on a lock; every reader thread gets its own connection.

    `generation` increases with every committed write, so derived data (the ANN files) can tell whether
    it is still current.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._count_cache = (-1, 0)
        self._all: list[sqlite3.Connection] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = self._con()
            with self._write_lock:
                con.executescript(_SCHEMA)
                version = self.get_meta("schema_version")
                if version is None:
                    self._set_meta(con, "schema_version", str(SCHEMA_VERSION))
                    self._set_meta(con, "generation", "0")
                    con.commit()
                elif int(version) != SCHEMA_VERSION:
                    raise StoreError(f"{self.path} has index format {version}, this sg writes {SCHEMA_VERSION}: "
                                     f"delete {self.path.parent} to rebuild it")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open index {self.path}: {exc}") from exc

    # -- connections -------------------------------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level="DEFERRED", check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            # a read-only view of the FTS5 vocabulary (doc_freqs); temp: it writes nothing to the index file
            con.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, row)")
            self._local.con = con
            self._all.append(con)
        return con

    def connection(self) -> sqlite3.Connection:
        """The calling thread's connection (inside a read() or write() block: that transaction's)."""
        return self._con()

    def close(self) -> None:
        for con in self._all:
            try:
                con.close()
            except sqlite3.Error:
                pass
        self._all.clear()
        self._local = threading.local()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction; bumps the generation on commit when it changed a row. A transaction that
        changed nothing (an index run over an unchanged workspace) keeps the generation, so the saved ANN files
        stay current and the next one-shot search loads them instead of rebuilding them."""
        with self._write_lock:
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                changes = con.total_changes
                yield con
                if con.total_changes != changes:
                    con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                con.commit()
            except BaseException:
                con.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: everything read inside sees one committed state."""
        con = self._con()
        con.execute("BEGIN")
        try:
            yield con
        finally:
            con.rollback()

    # -- meta --------------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        return Store.read_meta(self._con(), key)

    @staticmethod
    def read_meta(con: sqlite3.Connection, key: str) -> str | None:
        """A meta value as `con`'s transaction sees it."""
        row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _set_meta(con: sqlite3.Connection, key: str, value: str) -> None:
        con.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value))

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as con:
            self._set_meta(con, key, value)

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- files and chunks --------------------------------------------------------------------------------------
    def files(self) -> dict[str, StoredFile]:
        rows = self._con().execute("SELECT id, path, size, mtime_ns, hash FROM files").fetchall()
        return {r[1]: StoredFile(*r) for r in rows}

    @staticmethod
    def touch_file(con: sqlite3.Connection, path: str, size: int, mtime_ns: int) -> None:
        con.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))

    @staticmethod
    def delete_file(con: sqlite3.Connection, path: str) -> list[int]:
        """Remove a file with its chunks and lexical rows; returns the ids of the chunks that went."""
        row = con.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            return []
        ids = [r[0] for r in con.execute("SELECT id FROM chunks WHERE file_id = ?", (row[0],))]
        con.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        con.execute("DELETE FROM chunks WHERE file_id = ?", (row[0],))
        con.execute("DELETE FROM files WHERE id = ?", (row[0],))
        return ids

    @staticmethod
    def put_file(con: sqlite3.Connection, path: str, size: int, mtime_ns: int, file_hash: str, language: str,
                 chunks: list[tuple[Chunk, str, str, tuple[str, str, str]]]) -> tuple[list[int], list[int]]:
        """Replace a file's chunks. Each item: (chunk, route, content hash, (path, symbol, body) token strings).
        Returns (ids removed, ids added)."""
        removed = Store.delete_file(con, path)
        cur = con.execute("INSERT INTO files(path, size, mtime_ns, hash, language) VALUES (?, ?, ?, ?, ?)",
                          (path, size, mtime_ns, file_hash, language))
        file_id = cur.lastrowid
        # Chunk ids only grow (a high-water mark in meta): a row's id never names other content later, which the
        # in-memory postings rely on. SQLite alone would reuse the ids of the last file's chunks on its re-index.
        next_id = max(int(Store.read_meta(con, "chunk_seq") or 0),
                      con.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0])
        ids = []
        for ordinal, (c, route, chash, fts) in enumerate(chunks):
            next_id += 1
            con.execute(
                "INSERT INTO chunks(id, file_id, ordinal, language, kind, symbol, start_line, end_line, start_col, "
                "end_col, text, doc, signature, route, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (next_id, file_id, ordinal, c.language, c.kind, c.symbol, c.start_line, c.end_line, c.start_col,
                 c.end_col, c.text, c.doc, c.signature, route, chash))
            ids.append(next_id)
            con.execute("INSERT INTO chunks_fts(rowid, path, symbol, body) VALUES (?, ?, ?, ?)", (next_id, *fts))
        if ids:
            Store._set_meta(con, "chunk_seq", str(next_id))
        return removed, ids

    @staticmethod
    def replace_skips(con: sqlite3.Connection, skips: Iterable[Skip], paths: Iterable[str] | None = None) -> None:
        """Record skips. With `paths`, only those paths' records are replaced (one-file updates). The same skips as
        recorded write nothing (and so keep the generation)."""
        skips = list(skips)
        if paths is None:
            have = set(con.execute("SELECT path, reason, detail FROM skipped"))
            if have == {(s.path, s.reason, s.detail) for s in skips} and len(have) == len(skips):
                return
            con.execute("DELETE FROM skipped")
        else:
            con.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in paths])
        con.executemany("INSERT OR REPLACE INTO skipped(path, reason, detail) VALUES (?, ?, ?)",
                        [(s.path, s.reason, s.detail) for s in skips])

    def skipped(self) -> list[Skip]:
        return [Skip(*r) for r in self._con().execute("SELECT path, reason, detail FROM skipped ORDER BY path")]

    def chunk_count(self) -> int:
        """How many chunks the store holds, counted again only after a write (`generation` changed)."""
        gen = self.generation
        if self._count_cache[0] != gen:
            self._count_cache = (gen, self.counts()["chunks"])
        return self._count_cache[1]

    def counts(self) -> dict[str, int]:
        con = self._con()
        return {
            "files": con.execute("SELECT COUNT(*) FROM files").fetchone()[0],
            "chunks": con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
            "skipped": con.execute("SELECT COUNT(*) FROM skipped").fetchone()[0],
        }

    def chunks_by_id(self, ids: Iterable[int], con: sqlite3.Connection | None = None,
                     text: bool = True) -> dict[int, ChunkRow]:
        """Chunks by id; with text=False their text, doc and signature are left empty (ranking needs neither)."""
        ids = list(ids)
        con = con or self._con()
        columns = _CHUNK_COLUMNS if text else _CHUNK_COLUMNS.replace("c.text, c.doc, c.signature", "'', '', ''")
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for r in con.execute(f"SELECT {columns} FROM chunks c JOIN files f ON f.id = c.file_id "
                                 f"WHERE c.id IN ({marks})", part):
                out[r[0]] = ChunkRow(*r)
        return out

    def chunks_of_file(self, path: str) -> list[ChunkRow]:
        rows = self._con().execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN files f ON f.id = c.file_id "
                                   "WHERE f.path = ? ORDER BY c.ordinal", (path,))
        return [ChunkRow(*r) for r in rows]

    def iter_chunks(self, batch: int = 1000) -> Iterator[ChunkRow]:
        """Every chunk in id order, read in pages so a huge store never sits in memory at once."""
        last = -1
        while True:
            rows = self._con().execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN files f ON f.id = c.file_id "
                                       "WHERE c.id > ? ORDER BY c.id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            for r in rows:
                yield ChunkRow(*r)
            last = rows[-1][0]

    # -- spaces and vectors ------------------------------------------------------------------------------------
    def spaces(self) -> dict[str, dict]:
        rows = self._con().execute("SELECT name, ident, dim, multi, codec, codebook FROM spaces").fetchall()
        return {r[0]: {"ident": r[1], "dim": r[2], "multi": bool(r[3]), "codec": r[4], "codebook": r[5]}
                for r in rows}

    def ensure_space(self, name: str, ident: str, dim: int, multi: bool, codec: str) -> bool:
        """Pin a space to a model identity. If the space held another model's vectors they are dropped
        (never mix two models in one space). Returns True when the space was (re)created."""
        with self.write() as con:
            row = con.execute("SELECT ident, dim, multi, codec FROM spaces WHERE name = ?", (name,)).fetchone()
            if row == (ident, dim, int(multi), codec):
                return False
            con.execute("DELETE FROM vectors WHERE space = ?", (name,))
            con.execute("INSERT OR REPLACE INTO spaces(name, ident, dim, multi, codec, codebook) "
                        "VALUES (?, ?, ?, ?, ?, NULL)", (name, ident, dim, int(multi), codec))
            return True

    def set_codebook(self, name: str, codebook: bytes) -> None:
        with self.write() as con:
            con.execute("UPDATE spaces SET codebook = ? WHERE name = ?", (codebook, name))

    def missing_vectors(self, space: str, routes: list[str], limit: int) -> list[tuple[str, ChunkRow]]:
        """Chunks of the given routes whose content hash has no vector in `space` yet (one per hash)."""
        marks = ",".join("?" * len(routes))
        rows = self._con().execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN files f ON f.id = c.file_id "
            f"WHERE c.route IN ({marks}) AND NOT EXISTS "
            f"(SELECT 1 FROM vectors v WHERE v.space = ? AND v.hash = c.hash) "
            f"GROUP BY c.hash ORDER BY c.id LIMIT ?", (*routes, space, limit)).fetchall()
        return [(r[13], ChunkRow(*r)) for r in rows]

    def count_missing(self, space: str, routes: list[str]) -> int:
        marks = ",".join("?" * len(routes))
        return self._con().execute(
            f"SELECT COUNT(DISTINCT c.hash) FROM chunks c WHERE c.route IN ({marks}) AND NOT EXISTS "
            f"(SELECT 1 FROM vectors v WHERE v.space = ? AND v.hash = c.hash)", (*routes, space)).fetchone()[0]

    @staticmethod
    def put_vectors(con: sqlite3.Connection, space: str, rows: list[tuple[str, bytes, bytes | None]]) -> None:
        con.executemany("INSERT OR REPLACE INTO vectors(space, hash, vec, tokens) VALUES (?, ?, ?, ?)",
                        [(space, h, v, t) for h, v, t in rows])

    def vectors_for_chunks(self, space: str, routes: list[str], con: sqlite3.Connection | None = None,
                           ids: Sequence[int] | None = None) -> Iterator[tuple[int, bytes]]:
        """(chunk id, pooled vector blob) for chunks of `routes` that have a vector in `space`."""
        con = con or self._con()
        marks = ",".join("?" * len(routes))
        # CROSS JOIN keeps chunks the outer loop: for a list of ids SQLite's planner otherwise walks every vector
        # of the space (reading each blob) and joins back to chunks, 20-40x slower at a few thousand chunks.
        sql = (f"SELECT c.id, v.vec FROM chunks c CROSS JOIN vectors v ON v.space = ? AND v.hash = c.hash "
               f"WHERE c.route IN ({marks})")
        if ids is None:
            yield from con.execute(sql, (space, *routes))
            return
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            yield from con.execute(sql + f" AND c.id IN ({','.join('?' * len(part))})", (space, *routes, *part))

    TOKENS_SQL = "SELECT c.id, v.tokens FROM chunks c CROSS JOIN vectors v ON v.space = ? AND v.hash = c.hash " \
                 "WHERE c.id IN ({marks})"  # CROSS JOIN: chunks by id first (see vectors_for_chunks)

    def token_blobs(self, space: str, ids: list[int], con: sqlite3.Connection | None = None) -> dict[int, bytes]:
        """The stored token-vector blob of each chunk id that has one in `space` (the MaxSim rerank's input)."""
        con = con or self._con()
        out: dict[int, bytes] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for cid, blob in con.execute(self.TOKENS_SQL.format(marks=",".join("?" * len(part))), (space, *part)):
                if blob is not None:
                    out[cid] = blob
        return out

    def gc_vectors(self) -> int:
        """Drop vectors no chunk refers to any more (old versions of edited functions)."""
        with self.write() as con:
            cur = con.execute("DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM chunks)")
            return cur.rowcount

    def integrity(self) -> list[str]:
        """Problems found by SQLite's own check and by cross-checking tables; empty when healthy."""
        con = self._con()
        problems = [r[0] for r in con.execute("PRAGMA integrity_check") if r[0] != "ok"]
        n_chunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        n_fts = con.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
        if n_chunks != n_fts:
            problems.append(f"{n_chunks} chunks but {n_fts} lexical rows")
        orphans = con.execute("SELECT COUNT(*) FROM chunks WHERE file_id NOT IN (SELECT id FROM files)").fetchone()[0]
        if orphans:
            problems.append(f"{orphans} chunks without a file")
        return problems


def manifest_json(data: dict) -> str:
    return json.dumps(data, sort_keys=True)
