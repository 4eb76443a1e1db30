"""FTS5's bm25() as the store's lexical index computes it (k1 1.2, b 0.75, column weights), for every backend that
reproduces it: the local backend's in-memory postings score with it, the Qdrant backend bakes it into sparse
vectors. The store's FTS5 index (engine/store.py) is the one definition of a chunk's words; this module reads them
the way FTS5 counts them."""

from __future__ import annotations

import math
import re

K1, B = 1.2, 0.75  # FTS5's bm25() constants
FTS_WORD = re.compile(r"[^\W]+", re.UNICODE)  # unicode61 with tokenchars '_': runs of word characters


def fts_words(text: str | None) -> list[str]:
    """The words FTS5 indexes for one column's stored text (its stored text is already lower-cased tokens)."""
    return FTS_WORD.findall(text or "")


def row_counts(cols, only=None) -> tuple[dict[str, list[int]], int]:
    """Each word's count in each column of one FTS row (path, symbol, body) and the row's length in words, as
    FTS5 counts them; with `only`, counts just those words (the length still counts every word)."""
    counts: dict[str, list[int]] = {}
    length = 0
    for c, text in enumerate(cols):
        ws = fts_words(text)
        length += len(ws)
        for w in ws:
            if only is not None and w not in only:
                continue
            n = counts.get(w)
            if n is None:
                n = counts[w] = [0, 0, 0]
            n[c] += 1
    return counts, length


def bm25_term(idf: float, freq, norm):
    """One word's share of FTS5's bm25: `freq` its column-weighted count, `norm` k1 (1 - b + b dl / avgdl)."""
    return idf * freq * (K1 + 1) / (freq + norm)


def length_norm(length, avgdl: float):
    """k1 (1 - b + b dl / avgdl): the length part of bm25's denominator."""
    return K1 * (1 - B + B * length / avgdl)


def idf_of(n_rows: int, df: int) -> float:
    return max(math.log((n_rows - df + 0.5) / (df + 0.5)), 1e-6)


def varints(blob: bytes) -> list[int]:
    """SQLite's big-endian varints (7 bits a byte, the 9th byte whole), as FTS5 writes its records."""
    out: list[int] = []
    i = 0
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
