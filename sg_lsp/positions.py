"""Positions and URIs: code-point columns <-> the negotiated encoding (UTF-16 by default, UTF-8, UTF-32),
file:// URIs <-> paths, and the line texts needed to convert a hit's columns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lsprotocol import types

from engine.text import split_lines

if TYPE_CHECKING:
    from .server import SgLanguageServer
    from .session import Folder


def to_client_units(line: str, col: int, encoding: str) -> int:
    """Code-point column -> column in the negotiated position encoding (utf-16 by default)."""
    col = max(0, min(col, len(line)))
    prefix = line[:col]
    if encoding == types.PositionEncodingKind.Utf32 or prefix.isascii():
        return col
    if encoding == types.PositionEncodingKind.Utf8:
        return len(prefix.encode("utf-8", "surrogatepass"))
    return len(prefix.encode("utf-16-le", "surrogatepass")) // 2


def from_client_units(line: str, units: int, encoding: str) -> int:
    """Column in the negotiated encoding -> code-point column (clamped to the line)."""
    if encoding == types.PositionEncodingKind.Utf32 or line.isascii():
        return max(0, min(units, len(line)))
    n = 0
    for i, ch in enumerate(line):
        if n >= units:
            return i
        cp = ord(ch)
        if encoding == types.PositionEncodingKind.Utf8:
            n += 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
        else:
            n += 2 if cp >= 0x10000 else 1
    return len(line)


def uri_to_path(uri: str) -> Path | None:
    """file:// URI -> absolute path (percent-decoded), or None for other schemes."""
    try:
        parsed = urlparse(uri)
    except (TypeError, ValueError):
        return None
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    if re.match(r"^/[A-Za-z]:", path):  # file:///C:/x on Windows
        path = path[1:]
    if parsed.netloc and parsed.netloc != "localhost":
        path = f"//{parsed.netloc}{path}"
    return Path(path)


def path_to_uri(path: Path) -> str:
    return path.absolute().as_uri()


class LineReader:
    """Line texts for turning code-point columns into client units: open document first, else the file on disk."""

    def __init__(self, ls: SgLanguageServer):
        self.ls = ls
        self.encoding = ls.encoding
        self.cache: dict[tuple[str, str], list[str]] = {}

    def line(self, folder: Folder, rel: str, index: int) -> str:
        key = (folder.uri, rel)
        lines = self.cache.get(key)
        if lines is None:
            lines = self.cache[key] = self._load(folder, rel)
        return lines[index] if 0 <= index < len(lines) else ""

    def _load(self, folder: Folder, rel: str) -> list[str]:
        uri = folder.uri_for(rel)
        try:
            doc = self.ls.workspace.text_documents.get(unquote(uri))
        except RuntimeError:
            doc = None
        if doc is not None:
            return split_lines(doc.source)
        try:
            data = (folder.root / rel).read_bytes()
        except OSError:
            return []
        from engine import decode_text  # decode exactly as the indexer did (BOMs, UTF-16/32)

        text = decode_text(rel, data)
        return split_lines(text) if isinstance(text, str) else []

    def position(self, folder: Folder, rel: str, line1: int, col: int) -> types.Position:
        line0 = max(0, line1 - 1)
        if self.encoding == types.PositionEncodingKind.Utf32 or col == 0:
            return types.Position(line=line0, character=max(0, col))
        return types.Position(line=line0, character=to_client_units(self.line(folder, rel, line0), col,
                                                                    self.encoding))

    def range(self, folder: Folder, hit: Any) -> types.Range:
        return types.Range(start=self.position(folder, hit.path, hit.start_line, hit.start_col),
                           end=self.position(folder, hit.path, hit.end_line, hit.end_col))

    def client_col_to_cp(self, folder: Folder, rel: str, line0: int, units: int) -> int:
        return from_client_units(self.line(folder, rel, line0), units, self.encoding)


def range_json(r: types.Range) -> dict[str, Any]:
    return {"start": {"line": r.start.line, "character": r.start.character},
            "end": {"line": r.end.line, "character": r.end.character}}

