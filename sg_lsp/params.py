"""Parameter validation for sg/* requests and commands: strict types, readable InvalidParams messages."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams

from .positions import uri_to_path

if TYPE_CHECKING:
    from .server import SgLanguageServer
    from .session import Folder


def as_params(params: Any, method: str) -> dict[str, Any]:
    if params is None:
        return {}
    if isinstance(params, dict):
        return params
    raise JsonRpcInvalidParams(f"invalid params for {method}: params must be an object")


def opt(p: dict[str, Any], key: str, kind: type | tuple[type, ...], method: str, default: Any = None) -> Any:
    value = p.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in (
        kind if isinstance(kind, tuple) else (kind,)))
    if not ok:
        words = {"str": "a string", "int": "an integer", "bool": "a boolean", "list": "an array", "dict": "an object"}
        names = " or ".join(words.get(k.__name__, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise JsonRpcInvalidParams(f"invalid params for {method}: '{key}' must be {names}")
    return value


def check_text(value: str, key: str, method: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"); model tokenizers raise TypeError on them, so refuse them here."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JsonRpcInvalidParams(f"invalid params for {method}: '{key}' is not valid Unicode text "
                                   f"(lone surrogate at character {exc.start})") from None
    return value


def scoped_paths(ls: SgLanguageServer, paths: list[Any] | None) -> dict[Folder, list[str] | None]:
    """Glob patterns per folder. Relative patterns apply to every folder; absolute paths and file:// URIs only to
    the folder that contains them; anything else (or any '..') is refused, so `paths` never leaves the workspace."""
    folders = list(ls.folders.values())
    if not paths:
        return {f: None for f in folders}
    if len(paths) > 100 or not all(isinstance(p, str) and p for p in paths):
        raise JsonRpcInvalidParams("invalid params for sg/search: 'paths' must be an array of at most 100 "
                                   "non-empty strings")
    out: dict[Folder, list[str]] = {}
    for p in paths:
        if p.startswith("file:"):
            absolute = uri_to_path(p)
        else:
            absolute = Path(p) if Path(p).is_absolute() else None
        if absolute is None and (".." in PurePosixPath(p.replace("\\", "/")).parts):
            raise JsonRpcInvalidParams(f"path pattern {p!r} reaches outside the workspace")
        if absolute is None:
            for f in folders:
                out.setdefault(f, []).append(p)
            continue
        owner = None
        for f in folders:
            rel = f.rel(absolute)
            if rel is not None and ".." not in PurePosixPath(rel).parts:
                owner = (f, rel)
                break
        if owner is None:
            raise JsonRpcInvalidParams(f"path {p!r} is outside the workspace")
        out.setdefault(owner[0], []).append(owner[1] if owner[1] != "." else "*")
    return out


def default_limit(ls: SgLanguageServer) -> int:
    """10, or less when a folder's search.max_results is smaller (a request without `limit` must not fail)."""
    return min([10, *(f.settings.search.max_results for f in ls.folders.values())])


def similar_target(params: Any, method: str, default: int = 10) -> tuple[str, int, int]:
    """(uri, 0-based line, limit) from {textDocument: {uri}, position} or {uri, line}."""
    p = as_params(params, method)
    doc = p.get("textDocument")
    if isinstance(doc, dict):
        uri = opt(doc, "uri", str, method)
        pos = p.get("position")
        if not isinstance(pos, dict) or not isinstance(pos.get("line"), int) or isinstance(pos.get("line"), bool):
            raise JsonRpcInvalidParams(f"invalid params for {method}: 'position' must be {{line, character}}")
        line = pos["line"]
    else:
        uri = opt(p, "uri", str, method)
        line = opt(p, "line", int, method)
    if uri is None or line is None:
        raise JsonRpcInvalidParams(f"invalid params for {method}: give {{textDocument: {{uri}}, position}} "
                                   "or {uri, line}")
    if line < 0:
        raise JsonRpcInvalidParams(f"invalid params for {method}: 'line' must be >= 0")
    return uri, line, opt(p, "limit", int, method, default)
