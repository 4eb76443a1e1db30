"""Minimal eval-spec loading and file-level metrics for the bench scripts (the engine has its own, engine/eval.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BENCH = (Path(__file__).resolve().parents[2] / "shared" / "bench").resolve()  # ../shared/bench from the project
SPECS = {
    "cosqa": "cosqa/dev.json", "java-cs": "java-cs/dev.json", "clones": "clones/dev.json", "ja": "ja/dev.json",
    "ja-mixed": "ja/mixed-dev.json", "repo-click": "repo-click/dev.json", "repo-pytest": "repo-pytest/dev.json",
}


@dataclass(frozen=True)
class Query:
    id: str
    query: str
    relevant: frozenset[str]  # file paths; a "path::symbol" entry counts as its file here


@dataclass(frozen=True)
class Spec:
    name: str
    mode: str
    corpus: Path
    queries: list[Query]


def load_spec(path: str | Path) -> Spec:
    """Read an eval spec; paths may be relative to the current directory or absolute."""
    p = Path(path).resolve()
    data = json.loads(p.read_text(encoding="utf-8"))
    queries = [
        Query(str(q["id"]), str(q["query"]), frozenset(r.split("::", 1)[0] for r in q["relevant"]))
        for q in data["queries"]
    ]
    corpus = (p.parent / data["corpus"]).resolve()
    return Spec(str(data.get("name", p.stem)), str(data.get("mode", "search")), corpus, queries)


def corpus_files(spec: Spec) -> list[tuple[str, str]]:
    """Every UTF-8 text file under the corpus root (hidden entries skipped) as (relative POSIX path, text)."""
    out = []
    for f in sorted(spec.corpus.rglob("*")):
        rel = f.relative_to(spec.corpus)
        if not f.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        try:
            out.append((rel.as_posix(), f.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
    return out


def metrics(ranked: list[list[str]], relevant: list[frozenset[str]], k: int = 10) -> dict[str, float]:
    """P@1, MRR@k and Recall@k averaged over queries; `ranked` holds file paths, best first, one list per query.

    Recall@k is the share of queries with a relevant file in the top k, as in the bench README (its clones
    figure, R@10 ~0.99, counts a query as recalled when any of its many relevant programs is in the top 10).
    """
    n = len(relevant)
    p1 = mrr = rec = 0.0
    for hits, rel in zip(ranked, relevant):
        top = hits[:k]
        if top and top[0] in rel:
            p1 += 1
        for i, h in enumerate(top):
            if h in rel:
                mrr += 1.0 / (i + 1)
                rec += 1
                break
    if n == 0:
        return {"P@1": 0.0, "MRR@10": 0.0, "R@10": 0.0, "n": 0}
    return {"P@1": p1 / n, f"MRR@{k}": mrr / n, f"R@{k}": rec / n, "n": n}


def corpus_chunks(corpus: Path) -> list:
    """sg's chunks of every indexable file under `corpus` (discovery and chunking exactly as `sg index` does)."""
    from engine import chunk as chunking
    from engine import discover
    from engine.records import Skip
    from engine.settings import load_settings

    settings = load_settings(None)
    chunks = []
    for entry in discover.walk(corpus, settings.index):
        if isinstance(entry, Skip):
            continue
        text = discover.read_text(entry, settings.index)
        if not isinstance(text, Skip):
            chunks.extend(chunking.chunk_file(entry.path, text, settings.index))
    return chunks
