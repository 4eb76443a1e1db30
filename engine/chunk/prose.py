"""Prose: Markdown and reST sections under their heading path, long sections and plain text grouped by paragraphs."""

from __future__ import annotations

import re

from .base import PROSE_MAX_CHARS, _line_windows, _Out, _Source, _trim

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def _markdown_headings(src: _Source) -> list[tuple[int, int, int, str]]:
    """(first line, heading lines, level, title) for ATX and setext headings outside code fences."""
    out = []
    fence = ""
    i = 0
    n = src.n
    if n and src.line(0).strip() == "---":  # YAML front matter
        for j in range(1, min(n, 300)):
            if src.line(j).strip() in ("---", "..."):
                i = j + 1
                break
    while i < n:
        line = src.line(i)
        m = _FENCE.match(line)
        if m:
            tok = m.group(1)
            if not fence:
                fence = tok
            elif tok[0] == fence[0] and len(tok) >= len(fence) and not line.strip()[len(tok):].strip():
                fence = ""
            i += 1
            continue
        if fence:
            i += 1
            continue
        m = _ATX.match(line)
        if m:
            title = re.sub(r"[ \t]+#+$", "", m.group(2) or "").strip()
            out.append((i, 1, len(m.group(1)), title))
            i += 1
            continue
        if (i + 1 < n and line.strip() and not line.startswith("    ") and _SETEXT.match(src.line(i + 1))
                and (i == 0 or src.blank(i - 1) or (out and out[-1][0] + out[-1][1] == i))
                and not line.lstrip().startswith(("-", "*", "+", ">", "|"))):
            level = 1 if src.line(i + 1).strip()[0] == "=" else 2
            out.append((i, 2, level, line.strip()))
            i += 2
            continue
        i += 1
    return out


def _rst_headings(src: _Source) -> list[tuple[int, int, int, str]]:
    out = []
    styles: list[tuple[str, bool]] = []
    n = src.n
    i = 0
    while i < n - 1:
        title = src.line(i)
        under = src.line(i + 1)
        t = title.strip()
        m = _RST_ADORN.match(under)
        if t and m and not _RST_ADORN.match(title) and not title[:1].isspace() and len(under.rstrip()) >= len(t) - 1:
            over = i > 0 and src.line(i - 1).rstrip() == under.rstrip()
            style = (m.group(1), over)
            if style not in styles:
                styles.append(style)
            first = i - 1 if over else i
            out.append((first, (3 if over else 2), styles.index(style) + 1, t))
            i += 2
            continue
        i += 1
    return out


def _paragraphs(src: _Source, a: int, b: int) -> list[tuple[int, int]]:
    """Blank-line separated blocks in lines a..b; a fenced code block stays one block."""
    out = []
    i = a
    while i <= b:
        while i <= b and src.blank(i):
            i += 1
        if i > b:
            break
        j = i
        fence = ""
        while j <= b:
            line = src.line(j)
            m = _FENCE.match(line)
            if m:
                fence = "" if fence else m.group(1)
            if not fence and j + 1 <= b and src.blank(j + 1):
                break
            j += 1
        j = min(j, b)
        out.append((i, j))
        i = j + 1
    return out


def _prose_groups(src: _Source, a: int, b: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Group paragraphs of lines a..b into runs of at most `window` lines and PROSE_MAX_CHARS chars."""
    groups: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for p0, p1 in _paragraphs(src, a, b):
        if p1 - p0 + 1 > window:  # one huge paragraph: line windows
            if cur:
                groups.append(cur)
                cur = None
            groups.extend(_line_windows(p0, p1, window, overlap))
            continue
        if cur is None:
            cur = (p0, p1)
            continue
        chars = src.ends[p1] - src.starts[cur[0]]
        if p1 - cur[0] + 1 <= window and chars <= PROSE_MAX_CHARS:
            cur = (cur[0], p1)
        else:
            groups.append(cur)
            cur = (p0, p1)
    if cur:
        groups.append(cur)
    return groups


def _chunk_prose(language: str, src: _Source, out: _Out) -> None:
    s = out.s
    window = max(1, s.window_lines)
    if language == "text":
        for g0, g1 in _prose_groups(src, 0, src.n - 1, window, s.window_overlap):
            out.lines("section", "", g0, g1, threshold=window)
            if out.full:
                return
        return
    heads = _markdown_headings(src) if language == "markdown" else _rst_headings(src)
    sections: list[tuple[int, int, int, str, str]] = []  # (first, body_first, last, symbol, heading)
    stack: list[tuple[int, str]] = []
    if not heads or heads[0][0] > 0:
        sections.append((0, 0, (heads[0][0] - 1) if heads else src.n - 1, "", ""))
    for k, (first, nlines, level, title) in enumerate(heads):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        last = heads[k + 1][0] - 1 if k + 1 < len(heads) else src.n - 1
        heading = " ".join(src.line(j).strip() for j in range(first, first + nlines)
                           if not _RST_ADORN.match(src.line(j)) and not _SETEXT.match(src.line(j)))
        sections.append((first, first + nlines, last, " > ".join(t for _, t in stack if t), heading or title))
    for first, body, last, symbol, heading in sections:
        a, b = _trim(src, body, last)
        if a > b:  # heading without a body of its own
            continue
        start = _trim(src, first, last)[0]
        if b - start + 1 <= window and src.ends[b] - src.starts[start] <= PROSE_MAX_CHARS:
            out.lines("section", symbol, start, b, signature=heading, threshold=window)
        else:
            groups = _prose_groups(src, a, b, window, s.window_overlap)
            if groups and start < a:
                groups[0] = (start, groups[0][1])
            for k, (g0, g1) in enumerate(groups):
                out.lines("section", symbol, g0, g1, signature=heading if k == 0 else "", threshold=window)
                if out.full:
                    return
        if out.full:
            return


# --------------------------------------------------------------------------------------------------------------
# PDF

