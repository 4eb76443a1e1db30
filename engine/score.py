"""Scoring: MaxSim, score normalisation, linear and reciprocal-rank fusion, name boost, test demotion, dedupe."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence, TypeVar

import numpy as np


@dataclass
class Fused:
    """A fused score with each component's weighted contribution (for explanations)."""

    score: float
    parts: dict[str, float] = field(default_factory=dict)


def maxsim(q: np.ndarray, doc: np.ndarray) -> float:
    """ColBERT late interaction: sum over query tokens of the best dot product with any document token."""
    if len(q) == 0 or len(doc) == 0:
        return 0.0
    return float((q @ doc.T).max(axis=1).sum())


def maxsim_many(q: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim of one query against many documents with a single matrix product and a segmented max."""
    out = np.zeros(len(docs), np.float32)
    keep = [i for i, d in enumerate(docs) if len(d)]
    if len(q) == 0 or not keep:
        return out
    mats = [docs[i] for i in keep]
    lengths = np.fromiter((len(m) for m in mats), np.int64, len(mats))
    sims = np.concatenate(mats).astype(np.float32, copy=False) @ q.T.astype(np.float32, copy=False)  # (sum t, tq)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    best = np.maximum.reduceat(sims, starts, axis=0)  # (n_docs, tq)
    out[keep] = best.sum(axis=1)
    return out


def minmax(scores: dict[int, float]) -> dict[int, float]:
    """Scale to [0, 1]. All-equal scores map to 1.0 (they are all the best this component has)."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo < 1e-12:
        return {k: 1.0 for k in scores}
    return {k: (v - lo) / (hi - lo) for k, v in scores.items()}


def fuse_linear(components: dict[str, dict[int, float]], weights: dict[str, float]) -> dict[int, Fused]:
    """Weighted sum of min-max normalised component scores; a document absent from a component gets 0 there."""
    out: dict[int, Fused] = {}
    for name, comp in components.items():
        w = weights.get(name, 0.0)
        if w <= 0:
            continue
        for doc, v in minmax(comp).items():
            f = out.setdefault(doc, Fused(0.0))
            f.score += w * v
            f.parts[name] = w * v
    return out


def fuse_rrf(components: dict[str, dict[int, float]], weights: dict[str, float], k: int = 60) -> dict[int, Fused]:
    """Weighted reciprocal rank fusion: sum of w / (k + rank)."""
    out: dict[int, Fused] = {}
    for name, comp in components.items():
        w = weights.get(name, 0.0)
        if w <= 0:
            continue
        for rank, doc in enumerate(sorted(comp, key=lambda d: -comp[d]), start=1):
            f = out.setdefault(doc, Fused(0.0))
            f.score += w / (k + rank)
            f.parts[name] = w / (k + rank)
    return out


_STOP = frozenset("a an and are as at be by do does for from how i in is it of on or the to what when where which "
                  "with python java code function method file files using use get".split())


def name_boost(query_tokens: Iterable[str], path_tokens: Sequence[str], symbol_tokens: Sequence[str]) -> float:
    """Share of meaningful query terms found in the symbol or file name (full weight) or directories (half)."""
    terms = [t for t in dict.fromkeys(query_tokens) if t not in _STOP and len(t) > 1]
    if not terms:
        return 0.0
    strong = set(symbol_tokens)
    stem_tokens = set(path_tokens[-3:]) if path_tokens else set()  # the file name's words come last
    strong |= stem_tokens
    weak = set(path_tokens)
    got = sum(1.0 if t in strong else 0.5 if t in weak else 0.0 for t in terms)
    return got / len(terms)


_TEST_PATH = re.compile(r"(^|/)(tests?|testing|__tests__|spec)(/|$)|(^|/)test_[^/]*$|_test\.\w+$|"
                        r"\.(test|spec)\.\w+$|(^|/)conftest\.py$|Tests?\.(java|cs|kt|swift)$")
_TEST_QUERY = re.compile(r"\b(tests?|testing|unittest|pytest|spec|fixture|mock)s?\b", re.I)


def is_test_path(path: str, symbol: str = "") -> bool:
    return bool(_TEST_PATH.search(path)) or symbol.split(".")[-1].startswith("test_")


def query_mentions_tests(query: str) -> bool:
    return bool(_TEST_QUERY.search(query))


T = TypeVar("T")


def dedupe(hits: Sequence[T]) -> list[T]:
    """Keep the first (best) hit per (path, symbol); windows of one long function collapse into one result.

    Hits without a symbol (line windows, module code) are all kept: they are different places.
    """
    seen: set[tuple[str, str]] = set()
    out = []
    for h in hits:
        key = (h.path, h.symbol)
        if h.symbol and key in seen:
            continue
        seen.add(key)
        out.append(h)
    return out
