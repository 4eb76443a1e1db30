"""Search features: workspace/symbol, sg/search, sg/similar, the "Find similar functions" code action and the
sg.findSimilar command. Each translates LSP params to an Engine call and the hits back to LSP JSON."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from engine import MODES

from ..jsonrpc import REQUEST_FAILED, check_cancel
from ..params import as_params, check_text, default_limit, opt, scoped_paths, similar_target
from ..positions import LineReader, range_json

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
                   explain: bool, cancel: threading.Event) -> tuple[list[tuple[Folder, Any]], dict[str, Any]]:
    """Run Engine.search on every folder (in the pool thread); hits merged by score."""
    _debug_delay(cancel)
    scopes = scoped_paths(ls, paths)
    hits: list[tuple[Folder, Any]] = []
    meta: dict[str, Any] = {"models": {}, "notes": [], "mode": mode, "route": {}}
    usable = [f for f in scopes if f.state != "error"]
    for folder, scope in scopes.items():
        check_cancel(cancel)
        if folder.state == "error" and usable:
            meta["notes"].append(f"{folder.name}: not searched: {folder.error}")
            continue
        with folder.use() as eng:
            eff_mode = mode
            if (mode or folder.settings.search.mode) != "lexical" and folder.settings.models.enabled:
                if folder.models_failed:
                    eff_mode = "lexical"
                    meta["notes"].append(f"{folder.name}: no embedding model ({folder.models_failed}): lexical only")
                elif not folder.models_ready and folder.state in ("opening", "indexing"):
                    # Loading models takes the engine's writer lock: do not wait behind the index.
                    eff_mode = "lexical"
                    meta["notes"].append(f"{folder.name}: models are still loading: lexical results only")
            res = eng.search(query, k=k, mode=eff_mode, paths=scope, explain=explain)
        hits.extend((folder, h) for h in res.hits)
        meta["models"].update(res.models)
        meta["notes"].extend(n for n in res.notes if n not in meta["notes"])
        meta["mode"] = res.mode
        meta["route"] = res.route
        if folder.state in ("opening", "indexing"):
            note = f"{folder.name}: still indexing; results come from what is indexed so far"
            if note not in meta["notes"]:
                meta["notes"].append(note)
    hits.sort(key=lambda fh: -fh[1].score)
    return hits[:k], meta


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


def similar_at(ls: SgLanguageServer, uri: str, line0: int, k: int, cancel: threading.Event) -> tuple[
        Folder, Any]:
    folder, rel = ls.require_folder(uri)
    check_cancel(cancel)
    with folder.use() as eng:
        mode = "lexical" if folder.models_failed or (
            not folder.models_ready and folder.state in ("opening", "indexing")) else None
        return folder, eng.similar(rel, line0 + 1, k=k, mode=mode)


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
        pairs, meta = search_folders(ls, query, limit, mode, paths, explain, cancel)
        check_cancel(cancel)
        return {"results": hits_json(ls, pairs, explain), "model": _model_label(meta["models"]),
                "models": meta["models"], "mode": meta["mode"], "notes": meta["notes"],
                "elapsedMs": round((time.perf_counter() - t0) * 1000, 2)}

    return await ls.offload("sg/search", run)


async def sg_similar(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    uri, line, limit = similar_target(params, SIMILAR, default_limit(ls))

    def run(cancel: threading.Event) -> dict[str, Any]:
        t0 = time.perf_counter()
        folder, res = similar_at(ls, uri, line, limit, cancel)
        return {"results": hits_json(ls, [(folder, h) for h in res.hits], False), "model": _model_label(res.models),
                "models": res.models, "mode": res.mode, "notes": res.notes,
                "elapsedMs": round((time.perf_counter() - t0) * 1000, 2)}

    return await ls.offload("sg/similar", run)


async def code_action(ls: SgLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    if params.context.only is not None and types.CodeActionKind.Empty not in params.context.only:
        return []
    uri, line0 = params.text_document.uri, params.range.start.line
    hit = ls.folder_for(uri)
    if hit is None:
        return []
    folder, rel = hit

    def run(cancel: threading.Event) -> list[types.CodeAction]:
        with folder.use(wait=0.5) as eng:
            chunks = eng.store.chunks_of_file(rel)
        covering = [c for c in chunks if c.start_line <= line0 + 1 <= c.end_line and c.kind in ("function", "method")]
        if not covering:
            return []
        target = min(covering, key=lambda c: c.end_line - c.start_line)
        title = "Find similar functions"
        return [types.CodeAction(title=title, command=types.Command(
            title=title, command=CMD_FIND_SIMILAR, arguments=[uri, target.start_line - 1]))]

    try:
        return await ls.offload("textDocument/codeAction", run)
    except JsonRpcException as exc:
        if exc.code == REQUEST_FAILED:
            return []  # index not open yet: no action rather than an error on every cursor move
        raise


# `ls: Any`: pygls evaluates a command's annotations at run time (get_type_hints), and SgLanguageServer is only
# imported for type checkers (the server module imports this one).
async def find_similar_command(ls: Any, *args: Any) -> list[dict[str, Any]]:
    """Arguments: [uri, line] (0-based line), or one object like sg/similar's params. Returns Location[]."""
    if len(args) == 1 and isinstance(args[0], dict):
        uri, line, limit = similar_target(args[0], CMD_FIND_SIMILAR, default_limit(ls))
    elif len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int) and not isinstance(args[1], bool):
        uri, line, limit = args[0], args[1], default_limit(ls)
        if line < 0:
            raise JsonRpcInvalidParams(f"invalid arguments for {CMD_FIND_SIMILAR}: line must be >= 0")
    else:
        raise JsonRpcInvalidParams(f"invalid arguments for {CMD_FIND_SIMILAR}: expected [uri, line] or "
                                   "[{textDocument: {uri}, position}]")

    def run(cancel: threading.Event) -> list[dict[str, Any]]:
        folder, res = similar_at(ls, uri, line, limit, cancel)
        reader = LineReader(ls)
        return [{"uri": folder.uri_for(h.path), "range": range_json(reader.range(folder, h))} for h in res.hits]

    return await ls.offload(CMD_FIND_SIMILAR, run)


def register(server: SgLanguageServer) -> None:
    server.feature(types.WORKSPACE_SYMBOL)(workspace_symbol)
    server.feature(SEARCH)(sg_search)
    server.feature(SIMILAR)(sg_similar)
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION)(code_action)
    server.command(CMD_FIND_SIMILAR)(find_similar_command)
