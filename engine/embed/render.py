"""What an embedder sees of a chunk: its text, optionally headed by its path and symbol words."""

from __future__ import annotations

from typing import Any

from .. import tokenize


def render_for_embedding(row: Any, style: str = "structured") -> str:
    """The text embedded for a chunk (anything with path, symbol and text). 'structured' prefixes path words and
    the symbol split into words; 'raw' is the chunk's text alone."""
    text = row.text
    if style == "raw":
        return text
    path_words = " ".join(tokenize.tokenize_path(row.path)[:12])
    symbol_words = " ".join(tokenize.tokenize_symbol(row.symbol)) if row.symbol else ""
    head = " | ".join(p for p in (path_words, symbol_words) if p)
    return f"{head}\n{text}" if head else text
