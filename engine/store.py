"""SQLite store (WAL): files, chunks, FTS5 lexical index, skips, per-space vectors. The single source of truth."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

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


_K1, _B = 1.2, 0.75  # FTS5's bm25() constants
_FTS_WORD = re.compile(r"[^\W]+", re.UNICODE)  # unicode61 with tokenchars '_': runs of word characters


def _varints(blob: bytes) -> list[int]:
    """SQLite's big-endian varints (7 bits a byte, the 9th byte whole), as FTS5 writes its records."""
    out, i = [], 0
    while i < len(blob):
        v = 0
        for k in range(9):
            if i >= len(blob):
                return out
            b = blob[i]
            i += 1
            if k == 8:
                v = (v << 8) | b
                break
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        out.append(v)
    return out


class Store:
    """One SQLite file per workspace. Writers serialise on a lock; every reader thread gets its own connection.

    `generation` increases with every committed write, so derived data (the ANN files) can tell whether
    it is still current.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._df_cache: tuple[tuple[int, int], dict[str, int]] = ((-1, -1), {})
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
        """One atomic write transaction; bumps the generation on commit."""
        with self._write_lock:
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
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
        row = self._con().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
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
        ids = []
        for ordinal, (c, route, chash, fts) in enumerate(chunks):
            cur = con.execute(
                "INSERT INTO chunks(file_id, ordinal, language, kind, symbol, start_line, end_line, start_col, "
                "end_col, text, doc, signature, route, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (file_id, ordinal, c.language, c.kind, c.symbol, c.start_line, c.end_line, c.start_col, c.end_col,
                 c.text, c.doc, c.signature, route, chash))
            ids.append(cur.lastrowid)
            con.execute("INSERT INTO chunks_fts(rowid, path, symbol, body) VALUES (?, ?, ?, ?)", (cur.lastrowid, *fts))
        return removed, ids

    @staticmethod
    def replace_skips(con: sqlite3.Connection, skips: Iterable[Skip], paths: Iterable[str] | None = None) -> None:
        """Record skips. With `paths`, only those paths' records are replaced (one-file updates)."""
        if paths is None:
            con.execute("DELETE FROM skipped")
        else:
            con.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in paths])
        con.executemany("INSERT OR REPLACE INTO skipped(path, reason, detail) VALUES (?, ?, ?)",
                        [(s.path, s.reason, s.detail) for s in skips])

    def skipped(self) -> list[Skip]:
        return [Skip(*r) for r in self._con().execute("SELECT path, reason, detail FROM skipped ORDER BY path")]

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

    # -- lexical -----------------------------------------------------------------------------------------------
    def lexical(self, tokens: list[str], limit: int, weights: tuple[float, float, float] = (1.0, 2.0, 1.0),
                con: sqlite3.Connection | None = None, ids: list[int] | None = None) -> dict[int, float]:
        """BM25 (FTS5) over path, symbol and body columns; chunk id -> positive score.

        With `ids`, scores exactly those chunks (the ones that match at all) instead of the top `limit`.
        """
        if not tokens:
            return {}
        con = con or self._con()
        if ids is not None:
            return self._bm25_of(tokens, ids, weights, con)
        expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens)
        try:
            rows = con.execute("SELECT rowid, -bm25(chunks_fts, ?, ?, ?) FROM chunks_fts WHERE chunks_fts MATCH ? "
                               "ORDER BY bm25(chunks_fts, ?, ?, ?) LIMIT ?", (*weights, expr, *weights, limit))
            return {r[0]: float(r[1]) for r in rows}
        except sqlite3.OperationalError:
            return {}  # a query FTS5 cannot parse has no lexical matches

    def _bm25_of(self, tokens: list[str], ids: list[int], weights: tuple[float, float, float],
                 con: sqlite3.Connection) -> dict[int, float]:
        """FTS5's bm25() (k1 1.2, b 0.75, column weights) for the given rows only, computed here from their stored
        tokens, the vocabulary's document counts and the index's averages record. FTS5 itself would walk every
        matching row first (`MATCH ... AND rowid IN (...)`: 55 ms a query on 100K chunks; this takes 2-7 ms)."""
        (n_rows, total), known = self._vocab(con)
        if not n_rows or not ids:
            return {}
        idf = {}
        for t, n in self._doc_freqs(list(dict.fromkeys(tokens)), con, known).items():
            if n:
                idf[t] = max(math.log((n_rows - n + 0.5) / (n + 0.5)), 1e-6)
        if not idf:
            return {}
        avgdl = total / n_rows
        out: dict[int, float] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = con.execute(f"SELECT rowid, path, symbol, body FROM chunks_fts WHERE rowid IN "
                               f"({','.join('?' * len(part))})", part)
            for rowid, *cols in rows:
                freq: dict[str, float] = {}
                length = 0
                for w, col in zip(weights, cols):
                    words = _FTS_WORD.findall(col or "")
                    length += len(words)
                    for word in words:
                        if word in idf:
                            freq[word] = freq.get(word, 0.0) + w
                if freq:
                    norm = _K1 * (1 - _B + _B * length / avgdl)
                    out[rowid] = sum(idf[t] * f * (_K1 + 1) / (f + norm) for t, f in freq.items())
        return out

    def fts_totals(self, con: sqlite3.Connection | None = None) -> tuple[int, int]:
        """(rows, tokens in all columns) of the FTS index, from its averages record (one read, no scan)."""
        con = con or self._con()
        row = con.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
        values = _varints(row[0]) if row and row[0] else []
        if len(values) >= 4:
            return values[0], sum(values[1:4])
        n = con.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]  # an empty or unknown record
        return n, con.execute("SELECT COALESCE(SUM(cnt), 0) FROM temp.chunks_vocab").fetchone()[0]

    def doc_freqs(self, tokens: list[str], con: sqlite3.Connection | None = None) -> dict[str, int]:
        """How many chunks hold each token (the FTS5 vocabulary, through a per-connection temp fts5vocab table).
        Cached until the index's row or token totals change."""
        con = con or self._con()
        return self._doc_freqs(tokens, con, self._vocab(con)[1])

    def _vocab(self, con: sqlite3.Connection) -> tuple[tuple[int, int], dict[str, int]]:
        """(fts_totals, the document counts known for that state of the index)."""
        key = self.fts_totals(con)
        cache = self._df_cache
        if cache[0] != key:
            cache = (key, {})
            self._df_cache = cache
        return cache

    @staticmethod
    def _doc_freqs(tokens: list[str], con: sqlite3.Connection, known: dict[str, int]) -> dict[str, int]:
        for t in tokens:
            if t not in known:
                row = con.execute("SELECT doc FROM temp.chunks_vocab WHERE term = ?", (t,)).fetchone()
                known[t] = int(row[0]) if row else 0
        return {t: known[t] for t in tokens}

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
                           ids: list[int] | None = None) -> Iterator[tuple[int, bytes]]:
        """(chunk id, pooled vector blob) for chunks of `routes` that have a vector in `space`."""
        con = con or self._con()
        marks = ",".join("?" * len(routes))
        sql = (f"SELECT c.id, v.vec FROM chunks c JOIN vectors v ON v.space = ? AND v.hash = c.hash "
               f"WHERE c.route IN ({marks})")
        if ids is None:
            yield from con.execute(sql, (space, *routes))
            return
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            yield from con.execute(sql + f" AND c.id IN ({','.join('?' * len(part))})", (space, *routes, *part))

    def token_blobs(self, space: str, ids: list[int], con: sqlite3.Connection | None = None) -> dict[int, bytes]:
        con = con or self._con()
        out: dict[int, bytes] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for cid, blob in con.execute(f"SELECT c.id, v.tokens FROM chunks c JOIN vectors v ON v.space = ? "
                                         f"AND v.hash = c.hash WHERE c.id IN ({marks})", (space, *part)):
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
