"""Search features: workspace/symbol, sg/search, sg/similar, the "Find similar functions" code action and the
sg.findSimilar command. Each translates LSP params to an Engine call and the hits back to LSP JSON."""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import ExitStack
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from engine import MODES, MultiResult, Target, search_many

from ..jsonrpc import REQUEST_FAILED, check_cancel
from ..params import as_params, check_position, check_text, default_limit, opt, similar_target
from ..positions import LineReader, range_json, uri_to_path

if TYPE_CHECKING:
    from ..server import SgLanguageServer
    from ..session import Folder

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


def search_folders(ls: SgLanguageServer, query: str, k: int, mode: str | None, paths: list[Any] | None,
                   explain: bool, cancel: threading.Event) -> tuple[list[tuple[Folder, Any]], MultiResult]:
    """engine.search_many over every workspace folder (in the pool thread): never waits for models to load.
    The server's part is translation: file:// URIs in `paths` become paths, folders become targets."""
    _debug_delay(cancel)
    scope = [local_path(p) for p in paths] if paths else None
    with ExitStack() as stack:
        folders, targets, unopened = [], [], []
        for folder in list(ls.folders.values()):
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


def local_path(pattern: Any) -> Any:
    """A file:// URI in `paths` -> the local path it names (the engine scopes paths, not URIs)."""
    if isinstance(pattern, str) and pattern.startswith("file:"):
        path = uri_to_path(pattern)
        if path is None:
            raise JsonRpcInvalidParams(f"invalid params for sg/search: {pattern!r} is not a local file URI")
        return str(path)
    return pattern


def _model_label(models: dict[str, str]) -> str:
    names = list(dict.fromkeys(v for v in models.values() if v and v != "lexical"))
    return ", ".join(names) if names else "lexical"


def hits_json(ls: SgLanguageServer, pairs: list[tuple[Folder, Any]], explain: bool) -> list[dict[str, Any]]:
    reader = LineReader(ls)
    out = []
    for folder, hit in pairs:
        item = {"uri": folder.uri_for(hit.path), "path": hit.path, "range": range_json(reader.range(folder, hit)),
                "symbol": hit.symbol, "kind": hit.kind, "language": hit.language, "score": round(hit.score, 6),
                "snippet": hit.snippet, "space": hit.space}
        if explain:
            item["explanation"] = {k: round(float(v), 6) for k, v in hit.components.items()}
        out.append(item)
    return out


def similar_at(ls: SgLanguageServer, uri: str, line0: int, character: int | None, k: int,
               cancel: threading.Event) -> tuple[Folder, Any]:
    """Engine.similar for the chunk enclosing the position (`character` in client units; None: the line only)."""
    folder, rel = ls.require_folder(uri)
    col = None if character is None else LineReader(ls).client_col_to_cp(folder, rel, line0, character)
    check_cancel(cancel)
    with folder.use() as eng:
        return folder, eng.similar(rel, line0 + 1, k=k, col=col, wait_for_models=False)


async def workspace_symbol(ls: SgLanguageServer, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
    if not params.query.strip():
        return []  # "list every symbol" is not a semantic question
    check_text(params.query, "query", types.WORKSPACE_SYMBOL)

    def run(cancel: threading.Event) -> list[types.WorkspaceSymbol]:
        k = min([SYMBOL_LIMIT, *(f.settings.search.max_results for f in ls.folders.values())])
        pairs, _ = search_folders(ls, params.query, k, None, None, False, cancel)
        check_cancel(cancel)
        reader = LineReader(ls)
        out = []
        for folder, hit in pairs:
            name, container = symbol_name(hit)
            out.append(types.WorkspaceSymbol(
                name=name, kind=_SYMBOL_KINDS.get(hit.kind, types.SymbolKind.Object), container_name=container,
                location=types.Location(uri=folder.uri_for(hit.path), range=reader.range(folder, hit))))
        return out

    return await ls.offload("workspace/symbol", run)


async def sg_search(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    p = as_params(params, SEARCH)
    query = p.get("query")
    if not isinstance(query, str):
        raise JsonRpcInvalidParams("invalid params for sg/search: 'query' (a string) is required")
    check_text(query, "query", SEARCH)
    limit = opt(p, "limit", int, SEARCH, default_limit(ls))
    mode = opt(p, "mode", str, SEARCH)
    if mode is not None and mode not in MODES:
        raise JsonRpcInvalidParams(f"invalid params for sg/search: 'mode' must be one of {', '.join(MODES)}")
    paths = opt(p, "paths", list, SEARCH)
    explain = opt(p, "explain", bool, SEARCH, False)

    def run(cancel: threading.Event) -> dict[str, Any]:
        t0 = time.perf_counter()
        pairs, res = search_folders(ls, query, limit, mode, paths, explain, cancel)
        check_cancel(cancel)
        out = {"results": hits_json(ls, pairs, explain), "model": _model_label(res.models),
               "models": res.models, "mode": res.mode, "notes": res.notes,
               "elapsedMs": round((time.perf_counter() - t0) * 1000, 2)}
        if explain:  # how the query was routed: the weight of each embedding space's route
            out["route"] = {r: round(float(w), 6) for r, w in res.route.items()}
        return out

    return await ls.offload("sg/search", run)


async def sg_similar(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    uri, line, character, limit = similar_target(params, SIMILAR, default_limit(ls))

    def run(cancel: threading.Event) -> dict[str, Any]:
        t0 = time.perf_counter()
        folder, res = similar_at(ls, uri, line, character, limit, cancel)
        return {"results": hits_json(ls, [(folder, h) for h in res.hits], False), "model": _model_label(res.models),
                "models": res.models, "mode": res.mode, "notes": res.notes,
                "elapsedMs": round((time.perf_counter() - t0) * 1000, 2)}

    return await ls.offload("sg/similar", run)


async def code_action(ls: SgLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    if params.context.only is not None and types.CodeActionKind.Empty not in params.context.only:
        return []
    uri, start = params.text_document.uri, params.range.start
    hit = ls.folder_for(uri)
    if hit is None:
        return []
    folder, rel = hit

    def run(cancel: threading.Event) -> list[types.CodeAction]:
        # sg/similar's rule (Engine.chunk_at): the action is offered when that chunk is a function or a method,
        # and its command carries the chunk's own start, which chunk_at resolves to the same chunk, and where the
        # editor opens the peek view.
        reader = LineReader(ls)
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
        return await ls.offload("textDocument/codeAction", run)
    except JsonRpcException as exc:
        if exc.code == REQUEST_FAILED:
            return []  # index not open yet: no action rather than an error on every cursor move
        raise


# `ls: Any`: pygls evaluates a command's annotations at run time (get_type_hints), and SgLanguageServer is only
# imported for type checkers (the server module imports this one).
async def find_similar_command(ls: Any, *args: Any) -> list[dict[str, Any]]:
    """Arguments: one object like sg/similar's params, or [uri, line, character?] (0-based). Returns Location[]."""
    def integer(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if len(args) == 1 and isinstance(args[0], dict):
        uri, line, character, limit = similar_target(args[0], CMD_FIND_SIMILAR, default_limit(ls))
    elif len(args) in (2, 3) and isinstance(args[0], str) and all(integer(a) for a in args[1:]):
        uri, line, character, limit = args[0], args[1], (args[2] if len(args) == 3 else None), default_limit(ls)
        check_position(line, character, CMD_FIND_SIMILAR)
    else:
        raise JsonRpcInvalidParams(f"invalid arguments for {CMD_FIND_SIMILAR}: expected "
                                   "[{textDocument: {uri}, position}], [uri, line, character] or [uri, line]")

    def run(cancel: threading.Event) -> list[dict[str, Any]]:
        folder, res = similar_at(ls, uri, line, character, limit, cancel)
        reader = LineReader(ls)
        return [{"uri": folder.uri_for(h.path), "range": range_json(reader.range(folder, h))} for h in res.hits]

    return await ls.offload(CMD_FIND_SIMILAR, run)


def register(server: SgLanguageServer) -> None:
    server.feature(types.WORKSPACE_SYMBOL)(workspace_symbol)
    server.feature(SEARCH)(sg_search)
    server.feature(SIMILAR)(sg_similar)
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION)(code_action)
    server.command(CMD_FIND_SIMILAR)(find_similar_command)
