"""The sg/* requests' params and results as typed classes, named as on the wire (editors/vscode/src/protocol.ts).

jsonrpc.make_converter registers `register_hooks`: params are structured strictly (no "10" for 10, no unknown
field, no lone surrogate) with errors that name the field; results are unstructured to the JSON of
docs/protocol.md (camelCase names; a field marked `omit` is left out while it is None or empty).
"""

from __future__ import annotations

import json
import re
import sys
import types as pytypes
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

Mode = Literal["hybrid", "semantic", "lexical"]  # engine.MODES; a unit test holds the two together


class Invalid(ValueError):
    """A params problem, already in words: "'limit' must be an integer"."""


def field(doc: str, default: Any = attrs.NOTHING, *, omit: bool = False) -> Any:
    """A field with its line in docs/protocol.md; `omit`: left out of a result while it holds `default`."""
    return attrs.field(default=default, metadata={"doc": doc, "omit": omit})


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# -- params --------------------------------------------------------------------------------------------------------
@attrs.frozen
class TextDocumentIdentifier:
    uri: str = field("a `file://` URI")


@attrs.frozen
class Position:
    line: int = field("0-based")
    character: int | None = field("0-based, in the negotiated position encoding; left out in params: the line only",
                                  None)


@attrs.frozen
class SearchParams:
    query: str = field("at most `search.max_query_chars` characters")
    limit: int | None = field("1..`search.max_results`; left out: 10, or `search.max_results` when smaller", None)
    paths: list[str] | None = field("glob patterns relative to each workspace folder (`src/**/*.py`, `tests`), or "
                                    "absolute paths / `file://` URIs inside a folder; anything containing `..` or "
                                    "outside every folder is rejected", None)
    mode: Mode | None = field("left out: the folder's `search.mode`", None)
    explain: bool = field("each hit gets `explanation`, the result gets `route`", False)


@attrs.frozen
class SimilarParams:
    text_document: TextDocumentIdentifier | None = field("the LSP form: with `position`", None)
    position: Position | None = field("the LSP form: with `textDocument`", None)
    uri: str | None = field("the short form: with `line` (and `character`)", None)
    line: int | None = field("the short form: 0-based", None)
    character: int | None = field("the short form: in the negotiated position encoding; left out: the line only",
                                  None)
    limit: int | None = field("as in `sg/search`", None)

    def __attrs_post_init__(self) -> None:
        uri, line, character = self._sent()
        if uri is None or line is None:
            if self.text_document is not None:
                raise Invalid("'position' must be {line, character}")
            raise Invalid("give {textDocument: {uri}, position} or {uri, line}")
        if line < 0:
            raise Invalid("'line' must be >= 0")
        if character is not None and character < 0:
            raise Invalid("'character' must be >= 0")

    def _sent(self) -> tuple[str | None, int | None, int | None]:
        if self.text_document is not None:
            pos = self.position
            return self.text_document.uri, None if pos is None else pos.line, None if pos is None else pos.character
        return self.uri, self.line, self.character

    @property
    def target(self) -> tuple[str, int, int | None]:
        """(uri, 0-based line, character or None), from whichever form was sent (both checked at structuring)."""
        uri, line, character = self._sent()
        assert uri is not None and line is not None
        return uri, line, character


@attrs.frozen
class TuneParams:
    folder: str | None = field("a workspace folder's URI; left out: the first folder", None)
    config_path: str | None = field("a tuning config (YAML); left out: configs/train_local_default.yaml's values",
                                    None)
    out_dir: str | None = field("where the tuned model goes; left out: a new version directory under the "
                                 "config's `output.root` (default `~/.cache/sg/models/local`)", None)
    dry_run: bool = field("mine training pairs only", False)
    apply: bool | None = field("switch the folder to the tuned model: true always, false never; left out: when "
                               "its held-out MRR@10 did not drop", None)


@attrs.frozen
class StatusParams:
    """No params (null or {})."""


@attrs.frozen
class ReindexParams:
    """No params (null or {})."""


PARAMS: dict[str, type] = {"sg/search": SearchParams, "sg/similar": SimilarParams, "sg/status": StatusParams,
                           "sg/tune": TuneParams, "sg/reindex": ReindexParams}


# -- results -------------------------------------------------------------------------------------------------------
@attrs.frozen
class Range:
    start: Position = field("")
    end: Position = field("")


@attrs.frozen
class Location:
    uri: str = field("")
    range: Range = field("")


@attrs.frozen
class SearchHit:
    uri: str = field("the file, spelled as the client spelled its workspace folder")
    path: str = field("workspace-relative, POSIX")
    range: Range = field("in the negotiated position encoding")
    symbol: str = field("`Class.method`, a heading, or `\"\"`")
    kind: str = field("function, method, class, section, window, page, module, ...")
    language: str = field("")
    score: float = field("")
    snippet: str = field("")
    space: str = field("the embedding space that contributed most (`\"\"` when only lexical matched)")
    explanation: dict[str, float] | None = field("with `explain`: the score's components", None, omit=True)


@attrs.frozen
class SearchResult:
    results: list[SearchHit] = field("best first")
    model: str = field("the models used, or `\"lexical\"` when none was")
    models: dict[str, str] = field("route -> model")
    mode: str = field("the mode used (lexical while the models load)")
    notes: list[str] = field("why results may be degraded (still indexing, models loading or unavailable)")
    elapsed_ms: float = field("time spent in the server")
    route: dict[str, float] | None = field("with `explain`: the query's weight on each route (`engine/route.py`)",
                                           None, omit=True)


@attrs.frozen
class JobStatus:
    id: str = field("`tune-1`, ...")
    kind: str = field("`tune`")
    folder: str = field("the folder's URI")
    state: str = field("running | done | failed | cancelled")
    message: str = field("the latest progress")
    started: float = field("Unix time")
    finished: float | None = field("Unix time; null while running")
    result: dict[str, Any] | None = field("when done: the tuning report plus `applied`", None, omit=True)
    error: str = field("when failed", "", omit=True)


@attrs.frozen
class FolderStatus:
    uri: str = field("")
    name: str = field("")
    state: str = field("opening | indexing | ready | error")
    error: str = field("why, when `state` is error")
    models_loaded: bool = field("")
    complete: bool = field("the last index ran to the end")
    last_index: dict[str, Any] = field("the last index run's report")
    files: int | None = field("this and the rest: once the folder's index is open", None, omit=True)
    chunks: int | None = field("", None, omit=True)
    skipped: int | None = field("", None, omit=True)
    vectors: dict[str, int] | None = field("model -> vectors held", None, omit=True)
    models: dict[str, str] | None = field("route -> model", None, omit=True)
    index: str | None = field("the index's path", None, omit=True)
    model_state: str | None = field("disabled | not loaded | loading | ready | failed", None, omit=True)
    model_error: str | None = field("when `modelState` is failed", None, omit=True)


@attrs.frozen
class StatusResult:
    state: str = field("indexing | ready (every folder complete and warm)")
    files: int = field("over all folders")
    chunks: int = field("over all folders")
    skipped: int = field("over all folders")
    models: dict[str, str] = field("route -> model")
    jobs: list[JobStatus] = field("background jobs (tuning)")
    folders: list[FolderStatus] = field("")
    position_encoding: str = field("utf-16, utf-8 or utf-32")
    version: str = field("the server's")


@attrs.frozen
class TuneResult:
    job_id: str = field("follow it in `sg/status` `jobs`")


_CLASSES = (TextDocumentIdentifier, Position, SearchParams, SimilarParams, TuneParams, StatusParams, ReindexParams,
            Range, Location, SearchHit, SearchResult, JobStatus, FolderStatus, StatusResult, TuneResult)


# -- converter hooks -----------------------------------------------------------------------------------------------
def is_protocol_class(cls: Any) -> bool:
    return cls in _CLASSES


def unicode_problem(text: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"), on which model tokenizers raise: '' when `text` is fine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode text (lone surrogate at character {exc.start})"
    return ""


def words(tp: Any) -> str:
    """What a JSON value of type `tp` is, for messages: 'an integer', 'an array of strings'."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, pytypes.UnionType):
        return " or ".join(words(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return "an array of " + {"a string": "strings", "an integer": "integers"}.get(words(args[0]), "values")
    if attrs.has(tp):
        return "an object {" + ", ".join(camel(a.name) for a in attrs.fields(tp)) + "}"
    return {int: "an integer", bool: "a boolean", float: "a number", str: "a string", dict: "an object"}.get(
        origin or tp, getattr(tp, "__name__", str(tp)))


def _checker(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """A structure hook for `tp` that refuses what JSON would only fit by coercion ("5", true for 1, "abc" for a
    list of strings), where cattrs' defaults would call int(), bool() or list() on it."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, pytypes.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        check = _checker(inner[0] if len(inner) == 1 else Union[tuple(inner)], conv)  # noqa: UP007
        return lambda v, _t: None if v is None else check(v, _t)
    if origin is Literal:
        def literal(v: Any, _t: Any) -> Any:
            if isinstance(v, bool) or v not in args:
                raise Invalid(f"must be {words(tp)}")
            return v
        return literal
    if origin is list:
        item = _checker(args[0], conv)

        def array(v: Any, _t: Any) -> list:
            if not isinstance(v, list):
                raise Invalid(f"must be {words(tp)}")
            try:
                return [item(x, args[0]) for x in v]
            except Invalid:
                raise Invalid(f"must be {words(tp)}") from None
        return array
    if attrs.has(tp):
        def obj(v: Any, _t: Any) -> Any:
            if not isinstance(v, dict):
                raise Invalid(f"must be {words(tp)}")
            return conv.structure(v, tp)
        return obj
    if tp is str:
        def string(v: Any, _t: Any) -> str:
            if not isinstance(v, str):
                raise Invalid("must be a string")
            problem = unicode_problem(v)
            if problem:
                raise Invalid(problem)
            return v
        return string
    if tp in (int, bool, float):
        ok = (int, float) if tp is float else (tp,)

        def scalar(v: Any, _t: Any) -> Any:
            if not isinstance(v, ok) or (isinstance(v, bool) and tp is not bool):
                raise Invalid(f"must be {words(tp)}")
            return v
        return scalar
    return lambda v, _t: v  # Any, dict[str, Any]: taken as sent


def _structure_factory(conv: cattrs.Converter) -> Callable[[type], Any]:
    def make(cls: type) -> Any:
        attrs.resolve_types(cls)
        hooks: dict[str, Any] = {}  # Any: mypy would match a dict of overrides against the _cattrs_* flags too
        for a in attrs.fields(cls):
            check = _checker(a.type, conv)
            if a.default is not attrs.NOTHING and a.default is not None:  # null means "left out"
                check = (lambda c, d: lambda v, t: d if v is None else c(v, t))(check, a.default)
            hooks[a.name] = override(rename=camel(a.name), struct_hook=check)
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True, **hooks)
    return make


def _unstructure_factory(conv: cattrs.Converter) -> Callable[[type], Any]:
    def make(cls: type) -> Any:
        attrs.resolve_types(cls)
        hooks: dict[str, Any] = {a.name: override(rename=camel(a.name), omit_if_default=bool(a.metadata.get("omit")))
                                 for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, conv, **hooks)
    return make


def register_hooks(conv: cattrs.Converter) -> None:
    """Teach `conv` the sg/* classes (registered last, so they win over lsprotocol's hooks for attrs classes)."""
    conv.register_structure_hook_factory(is_protocol_class, _structure_factory(conv))
    conv.register_unstructure_hook_factory(is_protocol_class, _unstructure_factory(conv))


# -- errors --------------------------------------------------------------------------------------------------------
def problems(exc: BaseException, cls: Any, path: str = "") -> list[str]:
    """Each problem in a structuring error as one phrase naming the field: "'position.line' must be an integer"."""
    where = f"'{path}' " if path else ""
    if isinstance(exc, cattrs.ClassValidationError):
        fields = attrs.fields_dict(cls) if attrs.has(cls) else {}
        out: list[str] = []
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            name = getattr(note, "name", "")
            field = fields.get(name)
            sub_path = f"{path}.{camel(name)}" if path else camel(name)
            sub_type = field.type if field is not None else getattr(note, "type", None)
            if isinstance(sub, KeyError):
                out.append(f"'{sub_path}' ({words(sub_type)}) is required")
            else:
                out += problems(sub, _attrs_class(sub_type), sub_path)
        for sub in without:
            out += problems(sub, cls, path)
        return out
    if isinstance(exc, ForbiddenExtraKeysError):
        known = ", ".join(camel(a.name) for a in attrs.fields(exc.cl))
        extra = ", ".join(f"'{k}'" for k in sorted(exc.extra_fields))
        plural = "s" if len(exc.extra_fields) > 1 else ""
        return [f"{where}{'has ' if path else ''}unknown field{plural} {extra} "
                f"({f'known: {known}' if known else 'it takes no params'})"]
    if isinstance(exc, Invalid):
        text = str(exc)
        return [f"{where}{text}" if path and not text.startswith("'") else text]
    return [f"{where}{exc}"]


def _attrs_class(tp: Any) -> Any:
    """The attrs class inside `tp` (X | None), else `tp`."""
    for a in (tp, *get_args(tp)):
        if attrs.has(a):
            return a
    return tp


def structure(conv: cattrs.Converter, raw: Any, cls: type, method: str) -> Any:
    """Params of `method` as a `cls`; Invalid with one readable line when they do not fit."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise Invalid(f"invalid params for {method}: params must be an object")
    try:
        return conv.structure(raw, cls)
    except (cattrs.BaseValidationError, ForbiddenExtraKeysError, Invalid) as exc:
        raise Invalid(f"invalid params for {method}: " + "; ".join(problems(exc, cls)[:5])) from None


# -- docs/protocol.md ----------------------------------------------------------------------------------------------
def type_name(tp: Any) -> str:
    """A field's type as protocol.ts would spell it."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, pytypes.UnionType):
        inner = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(inner)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"{type_name(args[0])}[]"
    if origin is dict:
        return "object" if args[1] is Any else f"{{[key]: {type_name(args[1])}}}"
    if attrs.has(tp):
        return tp.__name__
    return {int: "int", bool: "bool", float: "number", str: "string"}.get(tp, "any")


def doc_table(cls: type) -> str:
    """The markdown table of a class's fields: wire name (`?` when it may be left out), type, meaning."""
    attrs.resolve_types(cls)
    rows = ["| field | type | meaning |", "|---|---|---|"]
    for a in attrs.fields(cls):
        optional = a.default is not attrs.NOTHING
        nullable = type(None) in get_args(a.type) and not optional
        doc = a.metadata.get("doc", "")
        if optional and a.default not in (None, "") and not a.metadata.get("omit"):
            doc = f"{doc} (default `{json.dumps(a.default)}`)".lstrip()
        kind = type_name(a.type) + (" | null" if nullable else "")
        cells = [f"`{camel(a.name)}{'?' if optional else ''}`", f"`{kind}`", doc]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


_TABLE = re.compile(r"(<!-- table: (\w+) -->\n)(?:(?:(?!<!--).)*?\n)?(<!-- /table -->)", re.S)


def update_doc(text: str) -> str:
    """docs/protocol.md with every `<!-- table: Class -->` block regenerated from its class."""
    return _TABLE.sub(lambda m: m.group(1) + doc_table(globals()[m.group(2)]) + "\n" + m.group(3), text)


if __name__ == "__main__":  # python -m sg_lsp.protocol docs/protocol.md: regenerate the tables in place
    doc = Path(sys.argv[1])
    doc.write_text(update_doc(doc.read_text(encoding="utf-8")), encoding="utf-8")
