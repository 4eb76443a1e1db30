"""Plain records passed between pipeline stages: files, skips, chunks, hits."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

MODES = ("hybrid", "semantic", "lexical")  # search modes, the default first
Progress = Callable[[str, int, int], None]  # progress callback: (phase, done, total)


@dataclass(frozen=True)
class FileEntry:
    """A file the walk accepted: workspace-relative POSIX path plus what the store needs to detect change."""

    path: str
    abs_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Skip:
    """A path the walk or the reader refused, with a short machine-friendly reason and a human detail."""

    path: str
    reason: str  # one of SKIP_REASONS
    detail: str = ""


SKIP_REASONS = (
    "binary",
    "too-large",
    "undecodable",
    "unreadable",
    "symlink-outside",
    "symlink-loop",
    "vanished",
    "too-many-chunks",
)


@dataclass(frozen=True)
class Chunk:
    """One searchable unit. Lines are 1-based inclusive; columns are code-point offsets into those lines."""

    path: str
    language: str
    kind: str  # function | method | class | section | page | window | module
    symbol: str  # qualified name ("Text.split", "impl Foo::bar"); "" for windows/sections without a name
    start_line: int
    end_line: int
    text: str
    doc: str = ""  # docstring / doc comment, kept apart from the code
    signature: str = ""
    start_col: int = 0
    end_col: int = 0  # code-point column just past the last character on end_line


@dataclass(frozen=True)
class ChunkInfo:
    """Where an indexed chunk is: what Engine.chunk_at answers (lines 1-based, columns in code points)."""

    path: str
    symbol: str
    kind: str
    language: str
    start_line: int
    end_line: int
    start_col: int
    end_col: int


@dataclass
class Hit:
    """A ranked result. `components` explains the score (lexical, each semantic space, boosts)."""

    chunk_id: Hashable  # the backend's key (the store's chunk id for the local backend)
    path: str
    symbol: str
    kind: str
    language: str
    start_line: int
    end_line: int
    start_col: int
    end_col: int
    score: float
    snippet: str
    space: str = ""  # the embedding space that contributed most ("" for lexical-only)
    components: dict[str, float] = field(default_factory=dict)
