"""Line breaks as both the chunker and LSP count them: \\r\\n, \\r and \\n end a line; nothing else does."""

from __future__ import annotations

import re

LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """The lines of `text` without their breaks (a trailing break gives a last, empty line, as LSP counts)."""
    return LINE_BREAK.split(text)
