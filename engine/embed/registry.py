"""Resolve each route to an embedder: configured model -> offline default MiniLM -> lexical only, with reasons.

CJK never falls back to MiniLM: it cannot read Japanese (P@1 0.00 on the ja set, and blending it into BM25
hurt), so a missing CJK model means lexical-only CJK search. Routes that resolve to the same model share one
embedder instance. Nothing heavy happens here: embedders load their weights on first use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelError
from ..settings import ModelSettings
from . import (
    colbert,
    files,
    jina_code,
    pylate,  # sg-pylate hook
    sentence,
    unixcoder,
    xtr,
)
from .base import ROUTES, Embedder, ModelReport
from .runtime import select
from .transformer import Recipe

# Hub models whose code must be trusted even before we can read their config (for a message that says so).
_KNOWN_REMOTE_CODE = {colbert.NAME, jina_code.NAME}


def resolve_recipe(name_or_path: str, settings: ModelSettings) -> Recipe:
    """Find a model offline and work out its family from its files. Raises ModelError with the reason."""
    recipe = _recipe(name_or_path, settings)
    if recipe.trust_remote_code:
        config = files.read_json_opt(recipe.directory / "config.json")
        if files.needs_remote_code(config):
            files.check_remote_code(recipe.name, recipe.directory, config)
    return recipe


def _recipe(name_or_path: str, settings: ModelSettings) -> Recipe:
    try:
        directory = files.locate(name_or_path)
    except ModelError as exc:
        # say everything the user must do in one message: opt-ins as well as the missing download
        try:
            files.check_opt_ins(name_or_path, None, {}, trust_remote_code=settings.trust_remote_code,
                                allow_noncommercial=settings.allow_noncommercial,
                                remote_code=name_or_path in _KNOWN_REMOTE_CODE)
        except ModelError as opt:
            raise ModelError(f"{exc}; it also {str(opt).split(' ', 1)[1]}") from exc
        raise
    name = name_or_path if not Path(name_or_path).expanduser().is_dir() else str(directory)
    config = files.read_json_opt(directory / "config.json")
    opt_ins = dict(trust_remote_code=settings.trust_remote_code, allow_noncommercial=settings.allow_noncommercial)
    if pylate.looks_like(directory):  # sg-pylate hook: Transformer + Dense, no Pooling -> multi-vector (MaxSim)
        return pylate.recipe(directory, name, **opt_ins)
    if name_or_path == colbert.NAME or colbert.looks_like(directory, config):
        return colbert.recipe(directory, name, **opt_ins)
    if jina_code.looks_like(name_or_path, config):
        return jina_code.recipe(directory, name, trust_remote_code=settings.trust_remote_code)
    if sentence.is_sentence_transformers_dir(directory):
        recipe = sentence.recipe_from_dir(directory, name, trust_remote_code=settings.trust_remote_code)
        backbone_config = files.read_json_opt(recipe.directory / "config.json")
        files.check_opt_ins(name, directory, backbone_config, **opt_ins)
        return recipe
    if not config:
        raise ModelError(f"{name}: no config.json or modules.json in {directory}")
    files.check_opt_ins(name, directory, config, **opt_ins)
    if xtr.looks_like(directory, config):
        return xtr.recipe(directory, name)
    if unixcoder.looks_like(directory, config):
        return unixcoder.recipe(directory, name)
    return sentence.recipe_from_dir(directory, name, trust_remote_code=settings.trust_remote_code)


class _Resolver:
    """Memoises resolution per requested model, and instances per identity, so nothing loads twice."""

    def __init__(self, settings: ModelSettings, eager: bool, adapter_dir: Path | None,
                 log: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.log = log
        self.eager = eager
        self.adapter_dir = adapter_dir
        self.by_request: dict[str, Embedder | ModelError] = {}
        self.by_ident: dict[str, Embedder] = {}
        self.default_note = ""

    def _instance(self, recipe: Recipe) -> Embedder:
        s = self.settings
        recipe = dataclasses.replace(recipe, precision="fp32")
        if 0 < s.max_tokens < recipe.max_length:
            recipe = dataclasses.replace(recipe, max_length=s.max_tokens)
        cls = pylate.embedder_class(recipe)  # sg-pylate hook: ColBERT query/skiplist rules
        base = cls(recipe, threads=s.threads, batch_size=s.batch_size)
        emb = select.build(recipe, base, s.precision, getattr(s, "runtime", "auto"), threads=s.threads,
                           batch_size=s.batch_size, log=self.log)
        emb = self.by_ident.setdefault(emb.ident, emb)
        if self.eager:
            try:
                emb.load()  # type: ignore[attr-defined]  # every embedder select.build makes has load()
            except ModelError:
                del self.by_ident[emb.ident]
                raise
        return emb

    def get(self, request: str) -> Embedder:
        if request not in self.by_request:
            try:
                self.by_request[request] = self._instance(resolve_recipe(request, self.settings))
            except ModelError as exc:
                self.by_request[request] = exc
        found = self.by_request[request]
        if isinstance(found, ModelError):
            raise found
        return found

    def default(self) -> Embedder:
        key = "\0offline-default"
        if key not in self.by_request:
            try:
                recipe = sentence.default_recipe(self.settings.default_adapter, self.adapter_dir)
                self.default_note = recipe.note
                self.by_request[key] = self._instance(recipe)
            except ModelError as exc:
                self.by_request[key] = exc
        found = self.by_request[key]
        if isinstance(found, ModelError):
            raise found
        return found


def _report(route: str, emb: Embedder | None, note: str) -> ModelReport:
    if emb is None:
        return ModelReport(route, None, "", 0, "lexical", note)
    runs = select.report_note(emb)
    if runs:
        note += f"; {runs}"
    note = pylate.report_note(emb, note)  # sg-pylate hook: "multi-vector, N-d, PyLate"
    return ModelReport(route, emb.name, getattr(emb, "source", ""), emb.dim,
                       "multi" if emb.multi_vector else "single", note)


def load_embedders(settings: ModelSettings, log: Callable[[str], None] | None = None, *, eager: bool = False,
                   adapter_dir: Path | None = None) -> tuple[dict[str, Embedder | None], list[ModelReport]]:
    """Map each route in ROUTES to an embedder (None: lexical only) and say which model serves it and why.

    `eager` loads weights now, so a model that fails to load falls back here instead of failing at first use.
    `adapter_dir` overrides where sg's MiniLM adapter is looked for (tests).
    """
    embedders: dict[str, Embedder | None] = {route: None for route in ROUTES}
    reports: list[ModelReport] = []
    if not settings.enabled:
        reports = [_report(r, None, "semantic search is off (models.enabled = false)") for r in ROUTES]
    else:
        resolver = _Resolver(settings, eager, adapter_dir, log)
        for route in ROUTES:
            emb, note = _resolve_route(route, settings, resolver)
            embedders[route] = emb
            reports.append(_report(route, emb, note))
    if log is not None:
        for line in format_reports(reports):
            log(line)
    return embedders, reports


def _resolve_route(route: str, settings: ModelSettings, resolver: _Resolver) -> tuple[Embedder | None, str]:
    use_path = bool(settings.model_path) and route != "cjk"
    request = settings.model_path if use_path else getattr(settings, route)
    setting = "models.model_path" if use_path else f"models.{route}"
    if request:
        try:
            emb = resolver.get(request)
            return emb, f"{setting} = {request}"
        except ModelError as exc:
            problem = str(exc)
    else:
        problem = f"no model configured ({setting} is empty)"
    if route == "cjk":
        return None, (f"{problem}; CJK text is searched lexically only "
                      f"(the offline default {sentence.DEFAULT_NAME} cannot read CJK)")
    try:
        emb = resolver.default()
    except ModelError as exc:
        return None, f"{problem}; the offline default failed too ({exc}); lexical only"
    extra = f" ({resolver.default_note})" if resolver.default_note else ""
    return emb, f"{problem}; serving {route} with the offline default {sentence.DEFAULT_NAME}{extra}"


def format_reports(reports: list[ModelReport]) -> list[str]:
    """One human line per route, e.g. for `sg models` and the server log."""
    lines = []
    for r in reports:
        if r.model is None:
            lines.append(f"{r.route}: lexical only - {r.note}")
        else:
            lines.append(f"{r.route}: {r.model} ({r.kind}-vector, {r.dim}-d) - {r.note}")
    return lines
