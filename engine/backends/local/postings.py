"""An in-memory copy of the FTS5 postings, so BM25 top-k on a large index costs numpy time, not FTS5's.

FTS5 scores every row that matches any query word through its auxiliary-function interface: ~0.5 us a posting,
25-40 ms a query on 100K chunks. Here the same postings sit in flat numpy arrays (one CSR list per word: row
position and per-column counts) and a query is a few vectorised passes over its words' lists, with the same
formula (k1 1.2, b 0.75, column weights) and the index's current statistics, so scores equal FTS5's.

A snapshot covers the rows that existed when it was read. Rows are immutable (chunk ids are never reused, see
Store.put_file), so the snapshot stays exact for every row that is still there: rows added later are scored by
FTS5 (`rowid > max`), rows deleted later are dropped when they surface (Store checks that its top ids exist).
The store rebuilds the snapshot once enough has changed. Written here because no library scores FTS5's bm25
over an index it does not own; bm25s uses other formulas and cannot follow incremental updates.
"""

from __future__ import annotations

import sqlite3
from array import array

import numpy as np

from ..bm25 import bm25_term, length_norm, row_counts


class Postings:
    """Rows `rowids` (sorted) with their lengths, and per word the positions of the rows holding it plus the
    word's count in each column (path, symbol, body)."""

    def __init__(self, rowids: np.ndarray, lengths: np.ndarray, words: dict[str, int], ptr: np.ndarray,
                 pos: np.ndarray, counts: np.ndarray):
        self.rowids, self.lengths, self.words = rowids, lengths, words
        self.ptr, self.pos, self.counts = ptr, pos, counts
        self.max_rowid = int(rowids[-1]) if len(rowids) else 0
        self.dead: set[int] = set()  # rows found deleted since the snapshot

    def __len__(self) -> int:
        return len(self.rowids)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.rowids, self.lengths, self.ptr, self.pos, self.counts))

    @classmethod
    def read(cls, con: sqlite3.Connection) -> Postings:
        """Snapshot every row of chunks_fts (call inside a read transaction)."""
        # typed arrays, not lists: 5M postings (100K chunks) as Python ints would take ~600 MB while reading
        rowids, lengths = array("q"), array("q")
        post_word, post_row = array("i"), array("i")
        post_n = [array("H") for _ in range(3)]
        words: dict[str, int] = {}
        cap = np.iinfo(np.uint16).max
        for i, (rowid, *cols) in enumerate(con.execute("SELECT rowid, path, symbol, body FROM chunks_fts "
                                                       "ORDER BY rowid")):
            rowids.append(rowid)
            tally, length = row_counts(cols)
            for w, n in tally.items():
                post_word.append(words.setdefault(w, len(words)))
                post_row.append(i)
                for c in range(3):
                    post_n[c].append(min(n[c], cap))
            lengths.append(length)
        wid = np.frombuffer(post_word, np.int32)
        order = np.argsort(wid, kind="stable")  # by word; rows stay in order within a word
        counts = np.empty((len(wid), 3), np.uint16)
        for c in range(3):
            counts[:, c] = np.frombuffer(post_n[c], np.uint16)[order]
        ptr = np.zeros(len(words) + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(wid, minlength=len(words)))
        return cls(np.frombuffer(rowids, np.int64).copy(), np.frombuffer(lengths, np.int64).astype(np.float64),
                   words, ptr, np.frombuffer(post_row, np.int32)[order], counts)

    def scores(self, idf: dict[str, float], weights: tuple[float, float, float], avgdl: float) -> np.ndarray:
        """BM25 of every snapshot row (0 where no word matches), as FTS5 computes it with these statistics."""
        out = np.zeros(len(self.rowids), np.float64)
        w = np.asarray(weights, np.float64)
        for word, value in idf.items():
            j = self.words.get(word)
            if j is None:
                continue
            a, b = self.ptr[j], self.ptr[j + 1]
            pos = self.pos[a:b]
            freq = self.counts[a:b] @ w
            hit = freq > 0  # a word only in a zero-weight column adds nothing (as in FTS5)
            if not hit.all():
                pos, freq = pos[hit], freq[hit]
            out[pos] += bm25_term(value, freq, length_norm(self.lengths[pos], avgdl))
        return out

    def positions(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids held by the snapshot, their positions)."""
        arr = np.asarray(ids, np.int64)
        p = np.searchsorted(self.rowids, arr)
        p = np.minimum(p, max(len(self.rowids) - 1, 0))
        ok = (self.rowids[p] == arr) if len(self.rowids) else np.zeros(len(arr), bool)
        return arr[ok], p[ok]
