"""Search features: workspace/symbol, sg/search, sg/similar, the "Find similar functions" code action and the
sg.findSimilar command. Each translates LSP params to an Engine call and the hits back to LSP JSON."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import PurePosixPath
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from engine import MultiResult, Target, search_many
from engine import SearchResult as EngineResult

from ..jsonrpc import REQUEST_FAILED, check_cancel
from ..lines import LineReader
from ..positions import uri_to_path
from ..protocol import Location, SearchHit, SearchParams, SearchResult, SimilarParams, unicode_problem
from ..session import Folder, Session

logger = logging.getLogger("sg_lsp")

SEARCH = "sg/search"
SIMILAR = "sg/similar"
CMD_FIND_SIMILAR = "sg.findSimilar"
SYMBOL_LIMIT = 50
# Test hook: every search sleeps this long (cooperatively cancellable) so cancellation can be tested.
_DEBUG_DELAY = float(os.environ.get("SG_LSP_DEBUG_SEARCH_DELAY", "0") or 0)
_SYMBOL_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "class": types.SymbolKind.Class,
    "section": types.SymbolKind.String,  # what Markdown servers use for headings
    "page": types.SymbolKind.File,
    "window": types.SymbolKind.File,
    "module": types.SymbolKind.Module,
    "struct": types.SymbolKind.Struct,
    "interface": types.SymbolKind.Interface,
    "trait": types.SymbolKind.Interface,
    "enum": types.SymbolKind.Enum,
    "impl": types.SymbolKind.Class,
    "constant": types.SymbolKind.Constant,
    "variable": types.SymbolKind.Variable,
}
_CODE_KINDS = ("function", "method", "class", "struct", "interface", "trait", "enum", "impl")

def symbol_name(hit: Any) -> tuple[str, str]:
    """(name, container): 'Class.method' -> ('method', 'Class'); top-level symbols live in their file."""
    if not hit.symbol:
        return f"{PurePosixPath(hit.path).name}:{hit.start_line}", hit.path
    if hit.kind in _CODE_KINDS:
        for sep in ("::", "."):
            if sep in hit.symbol:
                container, name = hit.symbol.rsplit(sep, 1)
                if name and container:
                    return name, container
    return hit.symbol, hit.path


def _debug_delay(cancel: threading.Event) -> None:
    end = time.monotonic() + _DEBUG_DELAY
    while time.monotonic() < end:
        check_cancel(cancel)
        time.sleep(0.01)


def search_folders(session: Session, query: str, k: int, mode: str | None, paths: list[str] | None,
                   explain: bool, cancel: threading.Event) -> tuple[list[tuple[Folder, Any]], MultiResult]:
    """engine.search_many over every workspace folder (in the pool thread): never waits for models to load.
    The server's part is translation: file:// URIs in `paths` become paths, folders become targets."""
    _debug_delay(cancel)
    scope = [local_path(p) for p in paths] if paths else None
    with ExitStack() as stack:
        folders, targets, unopened = [], [], []
        for folder in list(session.folders.values()):
            try:  # holds the engine open while it is searched (a settings change may swap it meanwhile)
                eng = stack.enter_context(folder.use(wait=0.0 if folder.state == "error" else 10.0))
            except JsonRpcException as exc:
                unopened.append((folder, exc))
                continue
            folders.append(folder)
            targets.append(Target(folder.name, eng, indexing=folder.state in ("opening", "indexing"),
                                  error=folder.error if folder.state == "error" else ""))
        if not targets:
            raise unopened[0][1] if unopened else JsonRpcException("sg: no workspace folder is open",
                                                                    code=REQUEST_FAILED)
        res = search_many(targets, query, k=k, mode=mode, paths=scope, explain=explain, wait_for_models=False,
                          cancel=cancel)
    res.notes.extend(f"{f.name}: not searched: {exc.message}" for f, exc in unopened)
    return [(folders[i], h) for i, h in res.hits], res


def local_path(pattern: str) -> str:
    """A file:// URI in `paths` -> the local path it names (the engine scopes paths, not URIs)."""
    if pattern.startswith("file:"):
        path = uri_to_path(pattern)
        if path is None:
            raise JsonRpcInvalidParams(f"invalid params for sg/search: {pattern!r} is not a local file URI")
        return str(path)
    return pattern


def _model_label(models: dict[str, str]) -> str:
    names = list(dict.fromkeys(v for v in models.values() if v and v != "lexical"))
    return ", ".join(names) if names else "lexical"


def wire_hits(session: Session, pairs: list[tuple[Folder, Any]], explain: bool) -> list[SearchHit]:
    reader = LineReader(session)
    return [SearchHit(uri=folder.uri_for(hit.path), path=hit.path, range=reader.wire_range(folder, hit),
                      symbol=hit.symbol, kind=hit.kind, language=hit.language, score=round(hit.score, 6),
                      snippet=hit.snippet, space=hit.space,
                      explanation={k: round(float(v), 6) for k, v in hit.components.items()} if explain else None)
            for folder, hit in pairs]


def wire_result(session: Session, pairs: list[tuple[Folder, Any]], res: MultiResult | EngineResult, explain: bool,
                t0: float) -> SearchResult:
    """sg/search's and sg/similar's result; with explain, the query's route weights too."""
    return SearchResult(results=wire_hits(session, pairs, explain), model=_model_label(res.models),
                        models=res.models, mode=res.mode, notes=res.notes,
                        elapsed_ms=round((time.perf_counter() - t0) * 1000, 2),
                        route={r: round(float(w), 6) for r, w in res.route.items()} if explain else None)


def similar_at(session: Session, target: SimilarParams, k: int,
               cancel: threading.Event) -> tuple[Folder, EngineResult]:
    """Engine.similar for the chunk enclosing the position (`character` in client units; None: the line only)."""
    uri, line0, character = target.target
    folder, rel = session.require_folder(uri)
    col = None if character is None else LineReader(session).client_col_to_cp(folder, rel, line0, character)
    check_cancel(cancel)
    with folder.use() as eng:
        return folder, eng.similar(rel, line0 + 1, k=k, col=col, wait_for_models=False)


async def workspace_symbol(session: Session, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
    if not params.query.strip():
        return []  # "list every symbol" is not a semantic question
    problem = unicode_problem(params.query)
    if problem:
        raise JsonRpcInvalidParams(f"invalid params for {types.WORKSPACE_SYMBOL}: 'query' {problem}")

    def run(cancel: threading.Event) -> list[types.WorkspaceSymbol]:
        k = min([SYMBOL_LIMIT, *(f.settings.search.max_results for f in session.folders.values())])
        pairs, _ = search_folders(session, params.query, k, None, None, False, cancel)
        check_cancel(cancel)
        reader = LineReader(session)
        out = []
        for folder, hit in pairs:
            name, container = symbol_name(hit)
            out.append(types.WorkspaceSymbol(
                name=name, kind=_SYMBOL_KINDS.get(hit.kind, types.SymbolKind.Object), container_name=container,
                location=types.Location(uri=folder.uri_for(hit.path), range=reader.range(folder, hit))))
        return out

    return await session.offload(types.WORKSPACE_SYMBOL, run)


async def sg_search(session: Session, params: SearchParams) -> SearchResult:
    limit = session.default_limit() if params.limit is None else params.limit

    def run(cancel: threading.Event) -> SearchResult:
        t0 = time.perf_counter()
        pairs, res = search_folders(session, params.query, limit, params.mode, params.paths, params.explain, cancel)
        check_cancel(cancel)
        return wire_result(session, pairs, res, params.explain, t0)

    return await session.offload(SEARCH, run)


async def sg_similar(session: Session, params: SimilarParams) -> SearchResult:
    limit = session.default_limit() if params.limit is None else params.limit

    def run(cancel: threading.Event) -> SearchResult:
        t0 = time.perf_counter()
        folder, res = similar_at(session, params, limit, cancel)
        return wire_result(session, [(folder, h) for h in res.hits], res, False, t0)

    return await session.offload(SIMILAR, run)


async def code_action(session: Session, params: types.CodeActionParams) -> list[types.CodeAction]:
    if params.context.only is not None and types.CodeActionKind.Empty not in params.context.only:
        return []
    uri, start = params.text_document.uri, params.range.start
    hit = session.folder_for(uri)
    if hit is None:
        return []
    folder, rel = hit

    def run(cancel: threading.Event) -> list[types.CodeAction]:
        # sg/similar's rule (Engine.chunk_at): the action is offered when that chunk is a function or a method,
        # and its command carries the chunk's own start, which chunk_at resolves to the same chunk, and where the
        # editor opens the peek view.
        reader = LineReader(session)
        col = reader.client_col_to_cp(folder, rel, start.line, start.character)
        with folder.use(wait=0.5) as eng:
            target = eng.chunk_at(rel, start.line + 1, col)
        if target is None or target.kind not in ("function", "method"):
            return []
        title = "Find similar functions"
        at = reader.position(folder, rel, target.start_line, target.start_col)
        where = {"textDocument": {"uri": uri}, "position": {"line": at.line, "character": at.character}}
        return [types.CodeAction(title=title, command=types.Command(
            title=title, command=CMD_FIND_SIMILAR, arguments=[where]))]

    try:
        return await session.offload(types.TEXT_DOCUMENT_CODE_ACTION, run)
    except JsonRpcException as exc:
        if exc.code == REQUEST_FAILED:
            return []  # index not open yet: no action rather than an error on every cursor move
        raise


async def find_similar_command(session: Session, *args: Any) -> list[Location]:
    """Arguments: one object like sg/similar's params, or [uri, line, character?] (0-based). Returns Location[]."""
    def integer(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if len(args) == 1 and isinstance(args[0], dict):
        target = session.structure(args[0], SimilarParams, CMD_FIND_SIMILAR)
    elif len(args) in (2, 3) and isinstance(args[0], str) and all(integer(a) for a in args[1:]):
        target = session.structure({"uri": args[0], "line": args[1], "character": args[2] if len(args) == 3 else None},
                                   SimilarParams, CMD_FIND_SIMILAR)
    else:
        raise JsonRpcInvalidParams(f"invalid arguments for {CMD_FIND_SIMILAR}: expected "
                                   "[{textDocument: {uri}, position}], [uri, line, character] or [uri, line]")
    limit = session.default_limit() if target.limit is None else target.limit

    def run(cancel: threading.Event) -> list[Location]:
        folder, res = similar_at(session, target, limit, cancel)
        reader = LineReader(session)
        return [Location(uri=folder.uri_for(h.path), range=reader.wire_range(folder, h)) for h in res.hits]

    return await session.offload(CMD_FIND_SIMILAR, run)


FEATURES: dict[str, Callable[..., Any]] = {
    types.WORKSPACE_SYMBOL: workspace_symbol,
    SEARCH: sg_search,
    SIMILAR: sg_similar,
    types.TEXT_DOCUMENT_CODE_ACTION: code_action,
}
COMMANDS: dict[str, Callable[..., Any]] = {CMD_FIND_SIMILAR: find_similar_command}
