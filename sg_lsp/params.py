"""Parameter validation for sg/* requests and commands: strict types, readable InvalidParams messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams

if TYPE_CHECKING:
    from .server import SgLanguageServer


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


def default_limit(ls: SgLanguageServer) -> int:
    """10, or less when a folder's search.max_results is smaller (a request without `limit` must not fail)."""
    return min([10, *(f.settings.search.max_results for f in ls.folders.values())])


def similar_target(params: Any, method: str, default: int = 10) -> tuple[str, int, int | None, int]:
    """(uri, 0-based line, character in client units or None, limit) from {textDocument: {uri}, position} or
    {uri, line, character?}."""
    p = as_params(params, method)
    doc = p.get("textDocument")
    if isinstance(doc, dict):
        uri = opt(doc, "uri", str, method)
        pos = p.get("position")
        if not isinstance(pos, dict) or not isinstance(pos.get("line"), int) or isinstance(pos.get("line"), bool):
            raise JsonRpcInvalidParams(f"invalid params for {method}: 'position' must be {{line, character}}")
        line, character = pos["line"], opt(pos, "character", int, method)
    else:
        uri = opt(p, "uri", str, method)
        line, character = opt(p, "line", int, method), opt(p, "character", int, method)
    if uri is None or line is None:
        raise JsonRpcInvalidParams(f"invalid params for {method}: give {{textDocument: {{uri}}, position}} "
                                   "or {uri, line}")
    check_position(line, character, method)
    return uri, line, character, opt(p, "limit", int, method, default)


def check_position(line: int, character: int | None, method: str) -> None:
    if line < 0:
        raise JsonRpcInvalidParams(f"invalid params for {method}: 'line' must be >= 0")
    if character is not None and character < 0:
        raise JsonRpcInvalidParams(f"invalid params for {method}: 'character' must be >= 0")
