"""The MCP server: four tools (search, similar, status, reindex) over one Workspace. Each tool checks its
arguments, calls Engine, and renders the answer (results.py); engine errors become tool errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from engine import SgError, split_lines

from . import __version__
from .results import SearchOut, render
from .workspace import NotReady, Workspace

INSTRUCTIONS = (
    "sg searches this workspace's code by meaning and by words (functions, classes, doc sections), offline. "
    "Call `search` with a short description of what the code does or its name; each result gives the file, the "
    "line span and the unit's first lines: open the file there instead of grepping for it again. Call `similar` "
    "with a file and line from a result (or a pasted snippet) to find code like it. The index follows file "
    "changes by itself; `status` says whether indexing or the embedding models are still loading (results are "
    "then lexical, and say so)."
)

Mode = Literal["hybrid", "semantic", "lexical"]
K = Annotated[int, Field(description="How many results (1-100).", ge=1, le=100)]
MODE = Annotated[Mode | None, Field(description="hybrid (default: words and meaning), semantic (meaning only) "
                                                "or lexical (words only, BM25).")]
SNIPPET_LINES = Annotated[int, Field(description="Source lines shown per result (0: location only).", ge=0, le=200)]
MAX_BYTES = Annotated[int, Field(description="Budget for the whole answer in UTF-8 bytes; snippets are cut and "
                                             "the last results left out to stay within it.", ge=200, le=200_000)]
LOCATION = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?::\d+)?$")


class StatusOut(BaseModel):
    root: str
    index: str = Field(description="The index file")
    state: str = Field(description="opening, indexing, ready or error")
    files: int
    chunks: int
    skipped: int
    models: dict[str, str] = Field(description="The model serving each route (lexical: none)")
    model_state: str = Field(description="disabled, not loaded, loading, ready or failed")
    model_note: str
    vectors: dict[str, int]
    watching: bool = Field(description="Whether file changes are picked up by themselves")
    error: str
    problems: list[str] = Field(description="Settings problems found in .sg.toml")
    last_index: dict[str, Any]


class ReindexOut(BaseModel):
    finished: bool = Field(description="False when the wait ran out: indexing goes on in the background")
    state: str
    files: int
    chunks: int
    last_index: dict[str, Any]


def build_server(ws: Workspace) -> MCPServer:
    server = MCPServer("sg", version=__version__, instructions=INSTRUCTIONS)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only)
    def search(
        query: Annotated[str, Field(description="What the code does ('retry with exponential backoff'), a name "
                                                "('parse_config'), or both. Any language, CJK included.")],
        k: K = 5,
        mode: MODE = None,
        paths: Annotated[list[str] | None, Field(description="Only results under these glob patterns, relative "
                                                             "to the workspace root ('src/**', 'tests/*.py').")] = None,
        snippet_lines: SNIPPET_LINES = 10,
        max_bytes: MAX_BYTES = 6000,
    ) -> Annotated[CallToolResult, SearchOut]:
        """Search the workspace for functions, classes and doc sections by meaning and words, best first."""
        with engine_errors():
            eng = ws.use()
            res = eng.search(query, k=k, mode=mode, paths=paths or None, wait_for_models=False)
        return answer(*render(repr(query), res, ws.root, snippet_lines, max_bytes, indexing_notes(ws)))

    @server.tool(annotations=read_only)
    def similar(
        path: Annotated[str | None, Field(description="A file in the workspace (relative to its root, or "
                                                      "absolute), or 'file:line'.")] = None,
        line: Annotated[int | None, Field(description="A line (1-based) inside the function or class to match.",
                                          ge=1)] = None,
        code: Annotated[str | None, Field(description="Instead of path and line: a pasted code snippet.")] = None,
        k: K = 5,
        mode: MODE = None,
        snippet_lines: SNIPPET_LINES = 10,
        max_bytes: MAX_BYTES = 6000,
    ) -> Annotated[CallToolResult, SearchOut]:
        """Find code similar to the function or class at a file and line (from a search result, say), or to a
        pasted snippet: other implementations, near-duplicates, the same idea in another language."""
        if code is not None and (path is not None or line is not None):
            raise ToolError("give either path and line, or code, not both")
        with engine_errors():
            eng = ws.use()
            if code is not None:
                res = eng.similar_text(code, k=k, mode=mode, wait_for_models=False)
                title = f"a snippet of {len(code.splitlines()) or 1} lines"
            else:
                rel, line = location(ws, path, line)
                try:
                    res = eng.similar(rel, line, k=k, mode=mode, wait_for_models=False)
                except SgError as exc:
                    raise ToolError(f"{exc}{' (the workspace is still being indexed)' if ws.indexing else ''}") \
                        from None
                title = f"{rel}:{line}"
        return answer(*render(title, res, ws.root, snippet_lines, max_bytes, indexing_notes(ws)))

    @server.tool(annotations=read_only)
    def status() -> StatusOut:
        """What is indexed (files, chunks, skipped files), which models serve it and whether they are ready, and
        whether indexing is still going on."""
        with engine_errors():
            st = ws.use().status()
        return StatusOut(root=st["root"], index=st["index"], state=ws.state, files=st["files"], chunks=st["chunks"],
                         skipped=st["skipped"], models=st["models"], model_state=st["model_state"],
                         model_note=st["model_note"], vectors=st["vectors"], watching=ws.watching, error=ws.error,
                         problems=st["problems"], last_index=ws.last_report)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False))
    def reindex(
        wait_seconds: Annotated[float, Field(description="How long to wait for the index to finish (0: return at "
                                                         "once, it goes on in the background).", ge=0, le=600)] = 60,
    ) -> ReindexOut:
        """Bring the index up to date with every file now. Rarely needed: file changes are picked up by
        themselves within a second or so."""
        with engine_errors():
            finished = ws.reindex(wait_seconds)
            st = ws.use().status()
        return ReindexOut(finished=finished, state=ws.state, files=st["files"], chunks=st["chunks"],
                          last_index=ws.last_report)

    return server


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's one-line errors (bad query, bad limit, path outside the workspace...) as tool errors."""
    try:
        yield
    except (SgError, NotReady) as exc:
        raise ToolError(str(exc)) from None


def location(ws: Workspace, path: str | None, line: int | None) -> tuple[str, int]:
    """(workspace-relative path, line) from path + line, or from 'file:line' in path."""
    if path is None or not path.strip():
        raise ToolError("give path and line (or 'file:line' as path), or code")
    if line is None:
        m = LOCATION.match(path.strip())
        if m is None:
            raise ToolError(f"no line given: pass line, or path as 'file:line' (got {path!r})")
        path, line = m["path"], int(m["line"])
        if line < 1:
            raise ToolError("line must be 1 or more")
    p = Path(path)
    full = (p if p.is_absolute() else ws.root / p).resolve()
    try:
        rel = full.relative_to(ws.root).as_posix()
    except ValueError:
        raise ToolError(f"{path} is outside the workspace {ws.root}") from None
    if not full.is_file():
        raise ToolError(f"no such file in the workspace: {rel}")
    try:
        lines = len(split_lines(full.read_bytes().decode("utf-8", "replace")))
    except OSError as exc:
        raise ToolError(f"cannot read {rel}: {exc.strerror}") from None
    if line > lines:
        raise ToolError(f"line {line} is past the end of {rel} ({lines} lines)")
    return rel, line


def indexing_notes(ws: Workspace) -> list[str]:
    return ["still indexing; results come from what is indexed so far"] if ws.indexing else []


def answer(text: str, out: SearchOut) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=out.model_dump(mode="json"))
