"""The lexical engine: BM25 with FTS5's formula over the store's FTS index, served from an in-memory snapshot of
the postings (postings.py) once a long-lived process asks for it, else by FTS5 itself; the scores are the
same either way."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np

from ..bm25 import bm25_term, idf_of, length_norm, row_counts, varints
from .postings import Postings

# In-memory postings are rebuilt once rows added or deleted since their snapshot pass this share of it
_POSTINGS_CHURN = 0.1


class Lexical:
    """BM25 over one store's chunks (path, symbol and body columns). Thread-safe for readers: each call reads
    through the calling thread's connection (or the read transaction passed as `con`)."""

    def __init__(self, store):
        self.store = store  # engine.store.Store
        self._df_cache: tuple[tuple[int, int, int], dict[str, int]] = ((-1, -1, -1), {})
        self._postings: Postings | None = None  # see warm
        self._postings_wanted = False
        self._postings_thread: threading.Thread | None = None
        self._last_scores = threading.local()  # the last snapshot scores per thread, for the fill-in

    @property
    def nbytes(self) -> int:
        """Memory held by the in-memory postings (0 before warm() has read them)."""
        snap = self._postings
        return snap.nbytes if snap is not None else 0

    def close(self) -> None:
        self._postings_wanted, self._postings = False, None

    def scores(self, tokens: list[str], limit: int, weights: tuple[float, float, float] = (1.0, 2.0, 1.0),
                con: sqlite3.Connection | None = None, ids: list[int] | None = None) -> dict[int, float]:
        """BM25 (FTS5's formula) over path, symbol and body columns; chunk id -> positive score.

        With `ids`, scores exactly those chunks (the ones that match at all) instead of the top `limit`. Served
        from the in-memory postings once warm_lexical has built them, else by FTS5; the scores are the same.
        """
        if not tokens or (ids is None and limit <= 0):
            return {}
        con = con or self.store.connection()
        snap = self._postings
        if ids is not None:
            return self._bm25_of(tokens, ids, weights, con, snap)
        if snap is not None:
            return self._lexical_snapshot(snap, tokens, limit, weights, con)
        return self._fts_top(tokens, limit, weights, con)

    @staticmethod
    def _fts_top(tokens: list[str], limit: int, weights: tuple[float, float, float], con: sqlite3.Connection,
                 after: int = -1) -> dict[int, float]:
        expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens)
        try:
            rows = con.execute("SELECT rowid, -bm25(chunks_fts, ?, ?, ?) FROM chunks_fts WHERE chunks_fts MATCH ? "
                               "AND rowid > ? ORDER BY bm25(chunks_fts, ?, ?, ?) LIMIT ?",
                               (*weights, expr, after, *weights, limit))
            return {r[0]: float(r[1]) for r in rows if r[1] > 0}
        except sqlite3.OperationalError:
            return {}  # a query FTS5 cannot parse has no lexical matches

    def _idf(self, tokens: list[str], con: sqlite3.Connection) -> tuple[dict[str, float], float, tuple[int, int, int]]:
        """(idf of each query word that occurs, average row length, the index state: FTS rows, FTS tokens,
        generation) as FTS5's bm25() uses them."""
        key, known = self._vocab(con)
        n_rows, total, _ = key
        if not n_rows:
            return {}, 0.0, key
        df = self._doc_freqs(list(dict.fromkeys(tokens)), con, known)
        return {t: idf_of(n_rows, n) for t, n in df.items() if n}, total / n_rows, key

    def _lexical_snapshot(self, snap: Postings, tokens: list[str], limit: int, weights: tuple[float, float, float],
                          con: sqlite3.Connection) -> dict[int, float]:
        """The top `limit` from the snapshot's postings (live rows only) and from FTS5 for rows added since."""
        idf, avgdl, key = self._idf(tokens, con)
        if not idf:
            return {}
        scores = snap.scores(idf, weights, avgdl)
        self._last_scores.value = ((tuple(tokens), tuple(weights), key, id(snap)), scores)
        added = con.execute("SELECT COUNT(*) FROM chunks WHERE id > ?", (snap.max_rowid,)).fetchone()[0]
        deleted = len(snap) + added - key[0]
        if self._postings_wanted and added + deleted > _POSTINGS_CHURN * len(snap) + 100:
            self._refresh_postings()  # time for a fresh snapshot
        out: dict[int, float] = {}
        gone = set(snap.dead)
        while True:
            if gone:  # rows deleted since the snapshot
                scores = scores.copy()
                scores[snap.positions(sorted(gone))[1]] = 0.0
            cand = np.flatnonzero(scores > 0)
            top = cand if len(cand) <= limit else cand[np.argpartition(-scores[cand], limit - 1)[:limit]]
            got = {int(snap.rowids[p]): float(scores[p]) for p in top}
            if not got:
                break
            marks = ",".join("?" * len(got))
            gone = set(got) - {r[0] for r in con.execute(f"SELECT id FROM chunks WHERE id IN ({marks})", list(got))}
            if not gone:
                out = got
                break
            snap.dead |= gone
        if added:
            out.update(self._fts_top(tokens, limit, weights, con, after=snap.max_rowid))
            if len(out) > limit:
                out = dict(sorted(out.items(), key=lambda kv: -kv[1])[:limit])
        return out

    def warm(self, wait: bool = False) -> None:
        """Read the in-memory postings that scores() serves from once they are ready (a background thread:
        ~1 s per 10K chunks), and read them afresh whenever enough rows have changed. For long-lived processes
        such as the language server: a one-shot search would only pay for them."""
        self._postings_wanted = True
        if self._postings is None:
            self._refresh_postings(wait)

    def _refresh_postings(self, wait: bool = False) -> None:
        t = self._postings_thread
        if t is None or not t.is_alive():
            t = threading.Thread(target=self._read_postings, name="sg-postings", daemon=True)
            self._postings_thread = t
            t.start()
        if wait:
            t.join()

    def _read_postings(self) -> None:
        try:  # a connection of its own, closed after: the store's per-thread ones live as long as the store
            con = sqlite3.connect(self.store.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
            try:
                con.execute("BEGIN")
                snap = Postings.read(con)
            finally:
                con.close()
        except (sqlite3.Error, MemoryError, ValueError):
            return  # FTS5 keeps serving; the next churn check tries again
        if self._postings_wanted:
            self._postings = snap

    def _bm25_of(self, tokens: list[str], ids: list[int], weights: tuple[float, float, float],
                 con: sqlite3.Connection, snap: Postings | None = None) -> dict[int, float]:
        """FTS5's bm25() (k1 1.2, b 0.75, column weights) for the given rows only: from the in-memory postings'
        scores of this query when they are at hand, else from the rows' stored tokens, the vocabulary's document
        counts and the index's averages record. FTS5 itself would walk every matching row first (`MATCH ... AND
        rowid IN (...)`: 55 ms a query on 100K chunks; this takes 2-7 ms, or well under 1 ms from the postings)."""
        idf, avgdl, key = self._idf(tokens, con)
        if not idf or not ids:
            return {}
        out: dict[int, float] = {}
        last = getattr(self._last_scores, "value", None)
        if snap is not None and last is not None and last[0] == (tuple(tokens), tuple(weights), key, id(snap)):
            held, pos = snap.positions(ids)
            vals = last[1][pos]
            out = {int(i): float(v) for i, v in zip(held, vals) if v > 0}
            held_set = set(held.tolist())
            ids = [i for i in ids if i not in held_set]  # rows newer than the snapshot
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = con.execute(f"SELECT rowid, path, symbol, body FROM chunks_fts WHERE rowid IN "
                               f"({','.join('?' * len(part))})", part)
            for rowid, *cols in rows:
                counts, length = row_counts(cols, idf)
                norm = length_norm(length, avgdl)
                value = sum(bm25_term(idf[t], sum(w * n for w, n in zip(weights, c)), norm) for t, c in counts.items())
                if value > 0:
                    out[rowid] = value
        return out

    def fts_totals(self, con: sqlite3.Connection | None = None) -> tuple[int, int]:
        """(rows, tokens in all columns) of the FTS index, from its averages record (one read, no scan)."""
        con = con or self.store.connection()
        row = con.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
        values = varints(row[0]) if row and row[0] else []
        if len(values) >= 4:
            return values[0], sum(values[1:4])
        n = con.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]  # an empty or unknown record
        return n, con.execute("SELECT COALESCE(SUM(cnt), 0) FROM temp.chunks_vocab").fetchone()[0]

    def doc_freqs(self, tokens: list[str], con: sqlite3.Connection | None = None) -> dict[str, int]:
        """How many chunks hold each token (the FTS5 vocabulary, through a per-connection temp fts5vocab table).
        Cached until the next write."""
        con = con or self.store.connection()
        return self._doc_freqs(tokens, con, self._vocab(con)[1])

    def _vocab(self, con: sqlite3.Connection) -> tuple[tuple[int, int, int], dict[str, int]]:
        """((FTS rows, FTS tokens, generation), the document counts known for that state of the index). The
        generation is part of the key: an edit that keeps both totals (one word replaced by another) still
        changes document counts, and a word searched before it was written must not stay at 0."""
        key = (*self.fts_totals(con), int(self.store.read_meta(con, "generation") or 0))
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
