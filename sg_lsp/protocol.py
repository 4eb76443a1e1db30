"""The sg/* requests' params and results as typed classes, named as on the wire (editors/vscode/src/protocol.ts).

jsonrpc.make_converter registers `register_hooks`: params are structured strictly (no "10" for 10, no unknown
field, no lone surrogate) with errors that name the field; results are unstructured to the JSON of
docs/protocol.md (camelCase names; a field marked `omit` is left out while it is None or empty).
"""

from __future__ import annotations

import types as pytypes
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

Mode = Literal["hybrid", "semantic", "lexical"]  # engine.MODES; a unit test holds the two together


class Invalid(ValueError):
    """A params problem, already in words: "'limit' must be an integer"."""


def omit(default: Any = None) -> Any:
    """A result field left out of the JSON while it holds `default` (None: absent rather than null)."""
    return attrs.field(default=default, metadata={"omit": True})


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# -- params --------------------------------------------------------------------------------------------------------
@attrs.frozen
class TextDocumentIdentifier:
    uri: str


@attrs.frozen
class Position:
    """0-based line; `character` in the negotiated position encoding (left out: the line only)."""

    line: int
    character: int | None = None


@attrs.frozen
class SearchParams:
    query: str
    limit: int | None = None  # None: 10, or the folders' smallest search.max_results when that is smaller
    paths: list[str] | None = None  # globs relative to each folder, or absolute paths / file:// URIs inside one
    mode: Mode | None = None  # None: the folder's search.mode
    explain: bool = False


@attrs.frozen
class SimilarParams:
    """{textDocument: {uri}, position} (the LSP form) or {uri, line, character?}, plus limit."""

    text_document: TextDocumentIdentifier | None = None
    position: Position | None = None
    uri: str | None = None
    line: int | None = None
    character: int | None = None
    limit: int | None = None

    def __attrs_post_init__(self) -> None:
        uri, line, character = self.target
        if uri is None or line is None:
            if self.text_document is not None:
                raise Invalid("'position' must be {line, character}")
            raise Invalid("give {textDocument: {uri}, position} or {uri, line}")
        if line < 0:
            raise Invalid("'line' must be >= 0")
        if character is not None and character < 0:
            raise Invalid("'character' must be >= 0")

    @property
    def target(self) -> tuple[Any, Any, int | None]:
        """(uri, 0-based line, character or None), from whichever form was sent."""
        if self.text_document is not None:
            pos = self.position
            return self.text_document.uri, None if pos is None else pos.line, None if pos is None else pos.character
        return self.uri, self.line, self.character


@attrs.frozen
class TuneParams:
    folder: str | None = None  # a workspace folder's uri; None: the first folder
    config_path: str | None = None
    out_dir: str | None = None
    dry_run: bool = False  # mine pairs only
    apply: bool | None = None  # None: switch when the held-out MRR@10 did not drop


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
    start: Position
    end: Position


@attrs.frozen
class Location:
    uri: str
    range: Range


@attrs.frozen
class SearchHit:
    uri: str
    path: str  # workspace-relative, POSIX
    range: Range
    symbol: str
    kind: str
    language: str
    score: float
    snippet: str
    space: str  # the embedding space that contributed most ("" when only lexical matched)
    explanation: dict[str, float] | None = omit()  # score components, with explain: true


@attrs.frozen
class SearchResult:
    """sg/search's and sg/similar's result."""

    results: list[SearchHit]
    model: str  # the models' names, or "lexical" when none was used
    models: dict[str, str]  # route -> model
    mode: str  # the mode actually used (lexical while models load)
    notes: list[str]  # why results may be partial
    elapsed_ms: float
    route: dict[str, float] | None = omit()  # the query's weight on each route, with explain: true


@attrs.frozen
class JobStatus:
    id: str
    kind: str
    folder: str
    state: str  # running | done | failed | cancelled
    message: str
    started: float
    finished: float | None
    result: dict[str, Any] | None = omit()  # the tuning report plus `applied`
    error: str = omit("")


@attrs.frozen
class FolderStatus:
    uri: str
    name: str
    state: str  # opening | indexing | ready | error
    error: str
    models_loaded: bool
    complete: bool
    last_index: dict[str, Any]
    # from the open engine (left out until the folder's index is open)
    files: int | None = omit()
    chunks: int | None = omit()
    skipped: int | None = omit()
    vectors: dict[str, int] | None = omit()
    models: dict[str, str] | None = omit()
    index: str | None = omit()
    model_state: str | None = omit()  # disabled | not loaded | loading | ready | failed
    model_error: str | None = omit()  # when failed


@attrs.frozen
class StatusResult:
    state: str  # indexing | ready
    files: int
    chunks: int
    skipped: int
    models: dict[str, str]
    jobs: list[JobStatus]
    folders: list[FolderStatus]
    position_encoding: str
    version: str


@attrs.frozen
class TuneResult:
    job_id: str


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
