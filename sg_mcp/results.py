"""What a tool answers: hits as compact text sized for an agent's context (a byte budget for the whole answer and
a line budget per snippet), with the same hits as structured content for programs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from engine import decode_text, split_lines

LINE_WIDTH = 240  # characters of one source line in a snippet (minified code has very long lines)
MAX_FILE_BYTES = 8 << 20


class HitOut(BaseModel):
    path: str = Field(description="Workspace-relative path")
    start_line: int = Field(description="First line of the unit (1-based)")
    end_line: int = Field(description="Last line of the unit (1-based, inclusive)")
    symbol: str = Field(description="Qualified name ('Class.method'); empty for unnamed sections")
    kind: str = Field(description="function, method, class, section, window, ...")
    language: str
    score: float
    snippet: str = Field(description="The unit's first lines, as budgeted")


class SearchOut(BaseModel):
    results: list[HitOut]
    mode: str = Field(description="The mode that ran (lexical while models load)")
    notes: list[str] = Field(description="Why results may be partial: models loading, still indexing, ...")
    elapsed_ms: float
    omitted: int = Field(0, description="Hits left out to stay within max_bytes")


def snippet_of(root: Path, hit: Any, lines: int) -> str:
    """The hit's first `lines` lines from the file as it is now (the editor's view), else the engine's snippet."""
    if lines <= 0:
        return ""
    try:
        path = root / hit.path
        if path.stat().st_size <= MAX_FILE_BYTES:
            text = decode_text(hit.path, path.read_bytes())
            if isinstance(text, str):
                src = split_lines(text)[hit.start_line - 1: hit.end_line]
                if src:
                    return "\n".join(ln.rstrip("\r\n")[:LINE_WIDTH] for ln in src[:lines])
    except OSError:
        pass
    return "\n".join(hit.snippet.splitlines()[:lines])


def render(title: str, res: Any, root: Path, snippet_lines: int, max_bytes: int,
           extra_notes: Sequence[str] = ()) -> tuple[str, SearchOut]:
    """(text for the model, structured copy). Hits go in rank order; a hit whose snippet does not fit keeps the
    lines that do; once not even a hit's location line fits, the rest are left out and counted. The header and the
    notes always come (they say why results may be partial)."""
    notes = list(dict.fromkeys([*res.notes, *extra_notes]))
    n = len(res.hits)
    head = [f"{n} result{'s' if n > 1 else ''} for {title} ({res.mode}, {res.elapsed_ms:.0f} ms)" if n
            else f"no results for {title} ({res.mode})"]
    head += [f"note: {n}" for n in notes]
    body, hits = _fit(res.hits, root, snippet_lines, max_bytes - _size(head))
    omitted = len(res.hits) - len(hits)
    if omitted:  # again with room for the line that says so
        tail = f"({{}} more left out to stay within max_bytes={max_bytes})"
        body, hits = _fit(res.hits, root, snippet_lines, max_bytes - _size(head) - _size([tail.format(omitted)]))
        omitted = len(res.hits) - len(hits)
        body.append(tail.format(omitted))
    return "\n".join(head + body), SearchOut(results=hits, mode=res.mode, notes=notes,
                                             elapsed_ms=round(res.elapsed_ms, 2), omitted=omitted)


def _fit(all_hits: list[Any], root: Path, snippet_lines: int, budget: int) -> tuple[list[str], list[HitOut]]:
    out: list[str] = []
    hits: list[HitOut] = []
    used = 0
    for h in all_hits:
        loc = f"{h.path}:{h.start_line}-{h.end_line}  {h.symbol or '-'}  ({h.kind}, {h.score:.3f})"
        if used + _size([loc]) > budget:
            break
        out.append(loc)
        used += _size([loc])
        kept: list[str] = []
        for i, line in enumerate(snippet_of(root, h, snippet_lines).split("\n") if snippet_lines else []):
            numbered = f"{h.start_line + i:>6}  {line}"
            if used + _size([numbered]) > budget:
                break
            out.append(numbered)
            used += _size([numbered])
            kept.append(line)
        hits.append(HitOut(path=h.path, start_line=h.start_line, end_line=h.end_line, symbol=h.symbol, kind=h.kind,
                           language=h.language, score=round(h.score, 5), snippet="\n".join(kept)))
    return out, hits


def _size(lines: list[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)
