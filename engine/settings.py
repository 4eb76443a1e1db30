"""All settings in one typed tree, resolved in one place: defaults <- .sg.toml <- initializationOptions/CLI
overrides."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from .errors import ConfigError
from .records import MODES

PRECISIONS = ("fp32", "int8", "bf16", "auto")
RUNTIMES = ("auto", "torch", "onnx")  # sg-onnx: the encoder's inference runtime (engine/embed/precision.py)

DEFAULT_EXCLUDES = (
    ".git/", ".hg/", ".svn/", ".sg/", "node_modules/", ".venv/", "venv/", "env/", ".env/", "__pycache__/",
    ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", ".tox/", ".nox/", "build/", "dist/", "target/",
    "out/", ".next/", ".gradle/", ".idea/", ".vscode/", "*.egg-info/", ".cache/", "*.min.js.map",
)


@dataclass
class ModelSettings:
    """Which model serves each route. A model_path overrides the code and prose models (a tuned model)."""

    code: str = "microsoft/unixcoder-base"
    prose: str = "google/xtr-base-en"
    cjk: str = "jinaai/jina-colbert-v2"
    model_path: str | None = None
    trust_remote_code: bool = False  # needed by Jina models; never on unless the user says so
    allow_noncommercial: bool = False  # Jina-ColBERT-v2 is CC-BY-NC-4.0
    default_adapter: bool = True  # apply sg's shipped adapter on top of the offline MiniLM
    enabled: bool = True  # False: lexical search only
    threads: int = 0  # 0: torch default capped at the core count
    batch_size: int = 32
    precision: str = "auto"  # auto | fp32 | int8 | bf16: the encoder's arithmetic (embed/precision.py chooses)
    runtime: str = "auto"  # auto | torch | onnx: ONNX Runtime wherever the model exports (embed/precision.py)
    max_tokens: int = 0  # cap every text a model reads at this many tokens (0: the model's own); a new vector space


@dataclass
class IndexSettings:
    max_file_bytes: int = 1 << 20
    max_chunks_per_file: int = 2000
    max_chunk_lines: int = 120  # longer functions are split into overlapping windows
    window_lines: int = 60
    window_overlap: int = 10
    excludes: list[str] = field(default_factory=list)  # extra gitignore-style patterns
    index_dir: str | None = None  # default <workspace>/.sg
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    token_codec: str = "int8"  # fp32 | fp16 | int8 | pq
    embed_render: str = "structured"  # structured (path + symbol words, then code) | raw
    backend: str = "local"  # local (SQLite + hnswlib) | qdrant (see [qdrant] and docs/qdrant.md)


@dataclass
class SearchSettings:
    mode: str = "hybrid"  # hybrid | semantic | lexical
    fusion: str = "linear"  # linear | rrf
    lexical_weight: float = 0.05  # hybrid: BM25's share against the semantic spaces (natural-language queries)
    similar_lexical_weight: float = 0.5  # the same when the query is code ("find similar")
    symbol_lexical_weight: float = 0.5  # the same when the query is a bare symbol ("APIRouter", "Rack::Builder")
    navigate: bool = True  # definitions, paths, file coherence, priors and diversity (engine/navigate.py)
    definition_boost: float = 3.0  # x the best fused score, for the chunk that defines a queried symbol
    path_boost: float = 1.0  # x the best fused score x the share of query words in a file's name or folder
    file_boost: float = 0.2  # x the best fused score, to a file's best chunk, by the file's share of the pool
    diversity: float = 0.5  # a file's n-th further chunk in the top k counts x diversity^n (1: no diversity)
    name_boost: float = 0.05
    rrf_k: int = 60
    candidates: int = 100
    max_token_share: float = 0.25  # BM25 leaves out query words found in more chunks than this (1: keep all)
    demote_tests: bool = True
    max_query_chars: int = 2000
    max_results: int = 200


# -- Qdrant backend (sg-qdrant; engine/backends/qdrant*.py, docs/qdrant.md) -------------------------------------
@dataclass
class QdrantSettings:
    url: str = ""  # http(s)://host:6333 (a server or cluster) or a directory (the embedded engine)
    collection: str = "sg"
    api_key_env: str = ""  # the NAME of the environment variable holding the API key; never the key itself
    repository: str = ""  # this workspace's name in a shared collection; "" = the workspace folder's name
    all_repositories: bool = False  # search every repository in the collection, not just this one
    exact: bool = False  # exact vector search instead of HNSW (small collections, checks)
    hnsw_ef: int = 128
# -- end Qdrant backend ---------------------------------------------------------------------------------------


@dataclass
class Settings:
    models: ModelSettings = field(default_factory=ModelSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    qdrant: QdrantSettings = field(default_factory=QdrantSettings)

    def validate(self) -> Settings:
        if self.search.mode not in MODES:
            raise ConfigError(f"search.mode must be hybrid, semantic or lexical, not {self.search.mode!r}")
        if self.search.fusion not in ("linear", "rrf"):
            raise ConfigError(f"search.fusion must be linear or rrf, not {self.search.fusion!r}")
        if self.models.precision not in PRECISIONS:
            raise ConfigError(f"models.precision must be one of {', '.join(PRECISIONS)}, not {self.models.precision!r}")
        if self.models.runtime not in RUNTIMES:
            raise ConfigError(f"models.runtime must be one of {', '.join(RUNTIMES)}, not {self.models.runtime!r}")
        if self.models.max_tokens != 0 and not 8 <= self.models.max_tokens <= 8192:
            raise ConfigError("models.max_tokens must be 0 (the model's own cap) or between 8 and 8192")
        if self.index.token_codec not in ("fp32", "fp16", "int8", "pq"):
            raise ConfigError(f"index.token_codec must be fp32, fp16, int8 or pq, not {self.index.token_codec!r}")
        if not 1 <= self.index.max_file_bytes <= 1 << 30:
            raise ConfigError("index.max_file_bytes must be between 1 and 1 GiB")
        if not 0 < self.search.diversity <= 1:
            raise ConfigError("search.diversity must be in (0, 1] (1: no diversity)")
        for name in ("definition_boost", "path_boost", "file_boost"):
            if not 0 <= getattr(self.search, name) <= 100:
                raise ConfigError(f"search.{name} must be between 0 and 100")
        if not 0 < self.search.max_token_share <= 1:
            raise ConfigError("search.max_token_share must be in (0, 1]")
        if not 1 <= self.search.max_results <= 10_000:
            raise ConfigError("search.max_results must be between 1 and 10000")
        if not 1 <= self.search.max_query_chars <= 100_000:
            raise ConfigError("search.max_query_chars must be between 1 and 100000")
        if not 1 <= self.index.max_chunks_per_file <= 100_000:
            raise ConfigError("index.max_chunks_per_file must be between 1 and 100000")
        if self.index.window_overlap >= self.index.window_lines:
            raise ConfigError("index.window_overlap must be smaller than index.window_lines")
        from .backends import check_backend  # the BACKENDS table (data: no backend is imported)

        check_backend(self)
        return self


def merge_into(obj: Any, data: Any, where: str = "", problems: list[str] | None = None,
               parsers: dict[str, Callable[[Any, str], Any]] | None = None) -> None:
    """Copy the keys of `data` onto dataclass `obj`, nested dataclasses recursively, checking each value's type.

    A key that is unknown or of the wrong type raises ConfigError when `problems` is None (a training config: a
    typo there is an error), else it is recorded in `problems` and ignored (.sg.toml, editor settings: a typo
    never stops the editor). `parsers` maps a field name to its own parser, `(value, where) -> value`.
    """
    strict = problems is None

    def refuse(text: str) -> None:
        if problems is None:
            raise ConfigError(text)
        problems.append(f"{text}, ignored" if text.endswith(("setting", "table")) else f"{text}; ignored")

    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            refuse(f"{where}{key}: unknown setting" + (f" (known: {', '.join(sorted(fields))})" if strict else ""))
            continue
        current = getattr(obj, name)
        if parsers and name in parsers:
            setattr(obj, name, parsers[name](value, f"{where}{key}"))
            continue
        if dataclasses.is_dataclass(current):
            if isinstance(value, dict):
                merge_into(current, value, f"{where}{key}.", problems, parsers)
            else:
                refuse(f"{where}{key}: expected a table")
            continue
        if value is None and (current is None or name in _NULLABLE):
            setattr(obj, name, None)
            continue
        ok, value = _fits(current, value, str(fields[name].type))
        if not ok:
            refuse(f"{where}{key}: expected {type(current).__name__ if current is not None else 'str'}, got "
                   + (repr(value) if strict else type(value).__name__))
            continue
        setattr(obj, name, value)


_NULLABLE = ("model_path", "index_dir")


def _fits(current: Any, value: Any, annotation: str) -> tuple[bool, Any]:
    """Whether `value` may replace `current` (ints widen to floats; lists keep their declared item type)."""
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool), value
    if isinstance(current, float):
        ok = isinstance(value, (int, float))
        return ok, float(value) if ok else value
    if isinstance(current, list):
        item = {"list[str]": str, "list[int]": int}.get(annotation.replace(" ", ""), object)
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        return ok, list(value) if ok else value
    return isinstance(value, type(current) if current is not None else str), value


def load_settings(workspace: str | Path | None = None, overrides: dict[str, Any] | None = None,
                  problems: list[str] | None = None, *, lenient: bool = False) -> Settings:
    """Defaults, then `<workspace>/.sg.toml`, then `overrides` (LSP initializationOptions or CLI flags).

    Unknown keys and wrong types fall back to the default and are reported in `problems`, so a typo never
    stops the editor; values that are the right type but out of range raise ConfigError, or with `lenient`
    (the language server) are reported and left out one by one, so one bad value does not throw away the rest
    (a stray `index.max_file_bytes = 0` must not turn models back on that the user turned off).
    """
    problems = problems if problems is not None else []
    layers: list[dict[str, Any]] = []
    if workspace is not None:
        path = Path(workspace) / ".sg.toml"
        if path.is_file():
            try:
                layers.append(tomllib.loads(path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
                problems.append(f"{path}: {exc}; using defaults")
    if overrides:
        layers.append(overrides)
    settings = Settings()
    for layer in layers:
        merge_into(settings, layer, "", problems)
    _resolve_paths(settings, workspace)
    try:
        return settings.validate()
    except ConfigError:
        if not lenient:
            raise
    settings = Settings()
    for layer in layers:
        for leaf in _leaves(layer):
            trial = dataclasses.replace(settings, models=dataclasses.replace(settings.models),
                                        index=dataclasses.replace(settings.index),
                                        search=dataclasses.replace(settings.search),
                                        qdrant=dataclasses.replace(settings.qdrant))
            merge_into(trial, leaf, "", [])
            try:
                settings = trial.validate()
            except ConfigError as exc:
                problems.append(f"{exc}; ignored")
    _resolve_paths(settings, workspace)
    return settings


def _leaves(data: dict[str, Any]) -> list[dict[str, Any]]:
    """{"a": {"b": 1, "c": 2}} -> [{"a": {"b": 1}}, {"a": {"c": 2}}]: one override per setting."""
    out: list[dict[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out += [{key: leaf} for leaf in _leaves(value)]
        else:
            out.append({key: value})
    return out


def _resolve_paths(settings: Settings, workspace: str | Path | None) -> None:
    """Relative paths in settings are relative to the workspace, not the current directory."""
    if workspace is None:
        return
    base = Path(workspace).expanduser()
    for obj, name in ((settings.models, "model_path"), (settings.index, "index_dir")):
        value = getattr(obj, name)
        if value and not Path(value).expanduser().is_absolute():
            setattr(obj, name, str((base / Path(value).expanduser()).resolve()))
    url = settings.qdrant.url  # a directory for the embedded Qdrant engine, not a server URL
    if url and "://" not in url and url != ":memory:" and not url.startswith("local:") \
            and not Path(url).expanduser().is_absolute():
        settings.qdrant.url = str((base / Path(url).expanduser()).resolve())
