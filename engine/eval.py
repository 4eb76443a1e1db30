"""Eval-spec loader and metrics (P@1, MRR@10, Recall@10) over an Engine built on the spec's corpus."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SpecError
from .records import Hit, Progress
from .settings import Settings, load_settings


@dataclass(frozen=True)
class Query:
    id: str
    query: str
    relevant: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    name: str
    corpus: Path
    mode: str  # "search" | "similar"
    queries: tuple[Query, ...]
    description: str = ""


@dataclass
class EvalResult:
    name: str
    mode: str
    n: int
    p_at_1: float
    mrr_at_10: float
    r_at_10: float
    seconds: float = 0.0
    misses: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "mode": self.mode, "n": self.n, "P@1": round(self.p_at_1, 4),
                "MRR@10": round(self.mrr_at_10, 4), "R@10": round(self.r_at_10, 4), "seconds": round(self.seconds, 2)}


def load_spec(path: str | Path) -> Spec:
    """Read an eval spec exactly as ../shared/bench/README.md describes it; errors name the broken part."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: not a readable JSON spec ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a JSON object")
    for key in ("corpus", "queries"):
        if key not in data:
            raise SpecError(f"{path}: missing key {key!r}")
    mode = data.get("mode", "search")
    if mode not in ("search", "similar"):
        raise SpecError(f"{path}: mode must be 'search' or 'similar', not {mode!r}")
    corpus = (path.parent / str(data["corpus"])).resolve()
    if not corpus.is_dir():
        raise SpecError(f"{path}: corpus directory {corpus} does not exist")
    if not isinstance(data["queries"], list):
        raise SpecError(f"{path}: 'queries' must be a list")
    queries = []
    for i, q in enumerate(data["queries"]):
        if not isinstance(q, dict) or not isinstance(q.get("query"), str) or not isinstance(q.get("relevant"), list):
            raise SpecError(f"{path}: query #{i} needs a string 'query' and a list 'relevant'")
        queries.append(Query(str(q.get("id", f"q{i:04d}")), q["query"], tuple(str(r) for r in q["relevant"])))
    return Spec(str(data.get("name", path.stem)), corpus, mode, tuple(queries), str(data.get("description", "")))


def _unit(hit: Hit, symbol_level: bool) -> str:
    return f"{hit.path}::{hit.symbol}" if symbol_level else hit.path


def rank_of(hits: list[Hit], relevant: tuple[str, ...], depth: int = 10) -> int | None:
    """1-based rank of the first relevant unit among the first `depth` distinct units, else None.

    A relevant entry is a corpus path (any hit in that file counts) or "path::symbol" (that chunk).
    Hits are collapsed to distinct units first, so several chunks of one file count once.
    """
    files = {r for r in relevant if "::" not in r}
    symbols = {r for r in relevant if "::" in r}
    seen: list[str] = []
    for h in hits:
        unit_file, unit_sym = h.path, f"{h.path}::{h.symbol}"
        unit = unit_sym if symbols and not files else unit_file
        if unit in seen:
            continue
        seen.append(unit)
        if unit_file in files or unit_sym in symbols:
            return len(seen)
        if len(seen) >= depth:
            break
    return None


def default_index_dir(corpus: Path, settings: Settings) -> Path:
    """Eval indexes live in the user cache (corpora may be read-only), one per corpus."""
    base = Path(os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg") / "eval"
    key = hashlib.blake2b(str(corpus).encode(), digest_size=6).hexdigest()
    return base / f"{corpus.parent.name}-{corpus.name}-{key}"


def run_eval(spec_path: str | Path, mode: str = "hybrid", settings: Settings | None = None,
             index_dir: str | Path | None = None, progress: Progress | None = None,
             keep_misses: bool = False, engine_factory=None) -> EvalResult:
    """Index the spec's corpus (cached, incremental) and score every query."""
    import time

    from .search import Engine

    spec = load_spec(spec_path)
    settings = settings or load_settings(None)
    settings.index.index_dir = str(index_dir or settings.index.index_dir or default_index_dir(spec.corpus, settings))
    engine = engine_factory(spec.corpus, settings) if engine_factory else Engine(spec.corpus, settings)
    try:
        engine.index(progress=progress, embed=mode != "lexical")
        t0 = time.perf_counter()
        if mode != "lexical":
            texts = [q.query if spec.mode == "similar" else q.query[: settings.search.max_query_chars]
                     for q in spec.queries]
            engine.prepare_queries([t[:20_000] for t in texts] if spec.mode == "similar" else texts,
                                   doc_query=spec.mode == "similar")
        p1 = mrr = r10 = 0.0
        misses = []
        for i, q in enumerate(spec.queries):
            if spec.mode == "similar":
                res = engine.similar_text(q.query, k=20, mode=mode)
            else:
                res = engine.search(q.query[: settings.search.max_query_chars], k=20, mode=mode)
            rank = rank_of(res.hits, q.relevant)
            if rank == 1:
                p1 += 1
            if rank is not None:
                mrr += 1 / rank
                r10 += 1
            if keep_misses and rank != 1:
                misses.append({"id": q.id, "query": q.query[:200], "relevant": list(q.relevant), "rank": rank,
                               "top": [{"path": h.path, "symbol": h.symbol, "score": round(h.score, 4),
                                        "components": {k: round(v, 4) for k, v in h.components.items()}}
                                       for h in res.hits[:3]]})
            if progress:
                progress("queries", i + 1, len(spec.queries))
        n = len(spec.queries) or 1
        return EvalResult(spec.name, mode, len(spec.queries), p1 / n, mrr / n, r10 / n,
                          time.perf_counter() - t0, misses)
    finally:
        engine.close()
