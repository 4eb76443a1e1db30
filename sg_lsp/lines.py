"""Line texts for turning a hit's code-point columns into the client's position encoding: the open document
(unsaved edits included) first, else the file on disk, decoded as the indexer decoded it."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from engine.text import split_lines

from . import protocol
from .positions import from_client_units, to_client_units
from .session import Folder, Session


class LineReader:
    """Reads each file once per request (a cache of its lines) to convert positions both ways."""

    def __init__(self, session: Session):
        self.session = session
        self.encoding = session.encoding
        self.cache: dict[tuple[str, str], list[str]] = {}

    def line(self, folder: Folder, rel: str, index: int) -> str:
        key = (folder.uri, rel)
        lines = self.cache.get(key)
        if lines is None:
            lines = self.cache[key] = self._load(folder, rel)
        return lines[index] if 0 <= index < len(lines) else ""

    def _load(self, folder: Folder, rel: str) -> list[str]:
        text = self.session.open_text(folder.uri_for(rel))
        if text is not None:
            return split_lines(text)
        try:
            data = (folder.root / rel).read_bytes()
        except OSError:
            return []
        from engine import decode_text  # decode exactly as the indexer did (BOMs, UTF-16/32)

        decoded = decode_text(rel, data)
        return split_lines(decoded) if isinstance(decoded, str) else []

    def position(self, folder: Folder, rel: str, line1: int, col: int) -> types.Position:
        line0 = max(0, line1 - 1)
        if self.encoding == types.PositionEncodingKind.Utf32 or col == 0:
            return types.Position(line=line0, character=max(0, col))
        return types.Position(line=line0, character=to_client_units(self.line(folder, rel, line0), col,
                                                                    self.encoding))

    def range(self, folder: Folder, hit: Any) -> types.Range:
        return types.Range(start=self.position(folder, hit.path, hit.start_line, hit.start_col),
                           end=self.position(folder, hit.path, hit.end_line, hit.end_col))

    def wire_range(self, folder: Folder, hit: Any) -> protocol.Range:
        """The hit's range as sg/* results carry it."""
        r = self.range(folder, hit)
        return protocol.Range(start=protocol.Position(line=r.start.line, character=r.start.character),
                              end=protocol.Position(line=r.end.line, character=r.end.character))

    def client_col_to_cp(self, folder: Folder, rel: str, line0: int, units: int) -> int:
        return from_client_units(self.line(folder, rel, line0), units, self.encoding)
