"""Positions and URIs: code-point columns <-> the negotiated encoding (UTF-16 by default, UTF-8, UTF-32), and
file:// URIs <-> paths. Pure functions; lines.py reads the line texts a conversion needs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types


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
