"""Shared pieces of the chunker: limits, the line table of a source text, the chunk collector with its size caps,
and the line and character windows every file can fall back to."""

from __future__ import annotations

from bisect import bisect_right

from ..records import Chunk
from ..settings import IndexSettings
from ..text import LINE_BREAK

CHUNKER_VERSION = 1

MAX_CHUNK_CHARS = 16 * 1024  # no chunk text is longer; longer spans are cut at line boundaries
PROSE_MAX_CHARS = 4000  # a prose chunk groups paragraphs up to this size (and up to window_lines lines)
MINIFIED_LINE = 1000  # lines longer than this count as minified/generated
CHAR_WINDOW = 4096  # character windows for minified files
CHAR_OVERLAP = 256


class _Source:
    """Line table over a text: char offset <-> (line, column), and tree-sitter byte offsets -> char offsets."""

    def __init__(self, text: str):
        self.text = text
        starts = [0]
        ends = []
        for m in LINE_BREAK.finditer(text):
            ends.append(m.start())
            starts.append(m.end())
        ends.append(len(text))
        self.starts = starts
        self.ends = ends
        self.n = len(starts)
        self.ascii = text.isascii()
        self._data: bytes | None = None
        self._bstarts: list[int] | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.text.encode("utf-8", "surrogatepass")
        return self._data

    def line_of(self, c: int) -> int:
        return bisect_right(self.starts, c) - 1

    def line(self, i: int) -> str:
        return self.text[self.starts[i]:self.ends[i]]

    def char(self, b: int) -> int:
        """Char offset of a UTF-8 byte offset (tree-sitter positions)."""
        if self.ascii:
            return b
        if self._bstarts is None:
            bstarts = []
            acc = 0
            text, starts = self.text, self.starts
            for i in range(self.n):
                bstarts.append(acc)
                nxt = starts[i + 1] if i + 1 < self.n else len(text)
                seg = text[starts[i]:nxt]
                acc += len(seg) if seg.isascii() else len(seg.encode("utf-8", "surrogatepass"))
            self._bstarts = bstarts
        i = bisect_right(self._bstarts, b) - 1
        piece = self.data[self._bstarts[i]:b]
        try:
            return self.starts[i] + len(piece.decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            return self.starts[i] + len(piece.decode("utf-8", "ignore"))

    def indent(self, i: int) -> int:
        s = self.line(i)
        return len(s) - len(s.lstrip())

    def blank(self, i: int) -> bool:
        return not self.line(i).strip()


# --------------------------------------------------------------------------------------------------------------
# Emitting chunks


class _Out:
    """Collects chunks for one file, applying the size caps every chunk must respect."""

    def __init__(self, path: str, language: str, src: _Source, settings: IndexSettings):
        self.path = path
        self.language = language
        self.src = src
        self.s = settings
        self.chunks: list[Chunk] = []
        self.limit = max(1, settings.max_chunks_per_file)
        # Stop collecting well past the cap; the sorted result is cut to the cap at the end.
        self.hard_limit = self.limit * 4 + 16

    @property
    def full(self) -> bool:
        return len(self.chunks) >= self.hard_limit

    def add(self, kind: str, symbol: str, start: int, end: int, doc: str = "", signature: str = "") -> bool:
        """One chunk for text[start:end] (trailing whitespace dropped), split at MAX_CHUNK_CHARS."""
        text = self.src.text
        while end > start and text[end - 1].isspace():
            end -= 1
        while start < end and text[start] in "\r\n":
            start += 1
        if end <= start or not text[start:end].strip():
            return False
        first = True
        for s, e in _cap_pieces(text, start, end):
            while e > s and text[e - 1].isspace():
                e -= 1
            while s < e and text[s] in "\r\n":
                s += 1
            if e <= s:
                continue
            if self.full:
                return not first
            self._make(kind, symbol, s, e, doc if first else "", signature if first else "")
            first = False
        return not first

    def _make(self, kind: str, symbol: str, start: int, end: int, doc: str, signature: str) -> None:
        src = self.src
        sl = src.line_of(start)
        el = src.line_of(end - 1) if end > start else sl
        self.chunks.append(Chunk(
            path=self.path, language=self.language, kind=kind, symbol=symbol,
            start_line=sl + 1, end_line=el + 1, text=src.text[start:end], doc=doc, signature=signature,
            start_col=start - src.starts[sl], end_col=end - src.starts[el]))

    def span(self, kind: str, symbol: str, start: int, end: int, doc: str = "", signature: str = "",
             threshold: int | None = None) -> None:
        """A span as one chunk, or as overlapping line windows if it has more than `threshold` lines."""
        src = self.src
        text = src.text
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start:
            return
        sl, el = src.line_of(start), src.line_of(end - 1)
        threshold = self.s.max_chunk_lines if threshold is None else threshold
        if el - sl + 1 <= threshold:
            self.add(kind, symbol, start, end, doc, signature)
            return
        first = True
        for a, b in _line_windows(sl, el, self.s.window_lines, self.s.window_overlap):
            s = start if a == sl else src.starts[a]
            e = end if b == el else src.ends[b]
            if self.add(kind, symbol, s, e, doc if first else "", signature if first else ""):
                first = False
            if self.full:
                return

    def lines(self, kind: str, symbol: str, a: int, b: int, doc: str = "", signature: str = "",
              threshold: int | None = None) -> None:
        """Whole lines a..b (0-based, inclusive)."""
        if a > b:
            return
        self.span(kind, symbol, self.src.starts[a], self.src.ends[b], doc, signature, threshold)

    def result(self) -> list[Chunk]:
        chunks = sorted(self.chunks, key=lambda c: (c.start_line, c.start_col, -c.end_line))
        return chunks[:self.limit]


def _line_windows(a: int, b: int, size: int, overlap: int) -> list[tuple[int, int]]:
    size = max(1, size)
    step = max(1, size - max(0, overlap))
    out = []
    i = a
    while True:
        j = min(i + size - 1, b)
        out.append((i, j))
        if j >= b:
            return out
        i += step


def _cap_pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut [start, end) into pieces of at most MAX_CHUNK_CHARS, preferring line then space boundaries."""
    if end - start <= MAX_CHUNK_CHARS:
        return [(start, end)]
    out = []
    cur = start
    while cur < end:
        lim = cur + MAX_CHUNK_CHARS
        if lim >= end:
            out.append((cur, end))
            break
        cut = text.rfind("\n", cur + MAX_CHUNK_CHARS // 2, lim)
        if cut < 0:
            cut = _soft_break(text, cur + MAX_CHUNK_CHARS // 2, lim)
        else:
            cut += 1
        out.append((cur, cut))
        cur = cut
    return out


_BREAK_CHARS = " \t;,}\n"


def _soft_break(text: str, lo: int, hi: int) -> int:
    """A cut position in (lo, hi]: just after the last space/;/,/} in range, else hi."""
    best = -1
    for ch in _BREAK_CHARS:
        k = text.rfind(ch, lo, hi)
        if k > best:
            best = k
    return best + 1 if best >= 0 else hi


def _alnum(text: str, enough: int = 8) -> int:
    """Letters and digits in `text`, counted only as far as needed to reach `enough` (gaps can be huge)."""
    n = 0
    for k in range(0, len(text), 256):
        n += sum(ch.isalnum() for ch in text[k:k + 256])
        if n >= enough:
            break
    return n


def _substantial(text: str) -> bool:
    """Whether leftover code (imports, constants, closing braces) is worth a chunk of its own."""
    s = text.strip()
    alnum = _alnum(s)
    if alnum < 8:
        return False
    return len(s) >= 40 or sum(1 for ln in s.splitlines() if ln.strip()) >= 2



def _trim(src: _Source, a: int, b: int) -> tuple[int, int]:
    while a <= b and src.blank(a):
        a += 1
    while b >= a and src.blank(b):
        b -= 1
    return a, b


def _is_minified(src: _Source) -> bool:
    total = len(src.text)
    if total < MINIFIED_LINE:
        return False
    long_chars = 0
    for s, e in zip(src.starts, src.ends):
        if e - s > MINIFIED_LINE:
            long_chars += e - s
    return long_chars * 2 > total


def _char_windows(src: _Source, out: _Out) -> None:
    text = src.text
    n = len(text)
    cur = 0
    while cur < n and not out.full:
        lim = cur + CHAR_WINDOW
        if lim >= n:
            out.add("window", "", cur, n)
            break
        cut = _soft_break(text, lim - CHAR_OVERLAP, lim)
        out.add("window", "", cur, cut)
        cur = max(cur + 1, cut - CHAR_OVERLAP)
        cur = _soft_break(text, cur, min(n, cur + CHAR_OVERLAP)) if cur < n else cur


def _windows(src: _Source, out: _Out) -> None:
    s = out.s
    for a, b in _line_windows(0, src.n - 1, s.window_lines, s.window_overlap):
        a2, b2 = _trim(src, a, b)
        if a2 <= b2:
            out.lines("window", "", a2, b2, threshold=max(1, s.window_lines))
        if out.full:
            return
