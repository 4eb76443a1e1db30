"""Reference BM25 baseline (bm25s over whole corpus files) to compare `sg eval` against.

    python bench/ref_lexical.py --spec ../shared/bench/cosqa/dev.json --tok plain|sg [--bm25 bm25s|fts5] [--json]

--tok plain: lower-case runs of letters, digits and "_" (what FTS5's unicode61 tokenizer, as sg configures it,
does with raw text); --tok sg: engine.tokenize. --bm25 bm25s: bm25s defaults (Lucene idf, k1 1.5, b 0.75), as
in the figures quoted in the bench README; fts5: Robertson idf, k1 1.2, b 0.75, which ranks like SQLite FTS5's
bm25() with one column. "path::symbol" relevance counts as its file. In "similar" mode the query is a code
snippet: it gets document tokenization (no de-duplication, no cap).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bm25s  # noqa: E402

from bench._spec import corpus_files, load_spec, metrics  # noqa: E402

_PLAIN = re.compile(r"\w+")
_BM25 = {"bm25s": {"method": "lucene", "k1": 1.5, "b": 0.75}, "fts5": {"method": "robertson", "k1": 1.2, "b": 0.75}}


def plain(text: str) -> list[str]:
    return _PLAIN.findall(text.lower())


def run(spec_path: str, tok: str, bm25: str = "bm25s", k: int = 10) -> dict:
    spec = load_spec(spec_path)
    files = corpus_files(spec)
    if tok == "sg":
        from engine import tokenize as T

        doc_tok, query_tok = T.tokenize, (T.tokenize if spec.mode == "similar" else T.tokenize_query)
    else:
        doc_tok = query_tok = plain
    t0 = time.perf_counter()
    docs = [doc_tok(text) for _, text in files]
    tok_s = time.perf_counter() - t0
    retriever = bm25s.BM25(**_BM25[bm25])
    retriever.index(docs, show_progress=False)
    vocab = retriever.vocab_dict
    paths = [p for p, _ in files]
    ranked: list[list[str]] = []
    for q in spec.queries:
        terms = [t for t in query_tok(q.query) if t in vocab]
        if not terms or not paths:
            ranked.append([])
            continue
        ids, scores = retriever.retrieve([terms], k=min(k, len(paths)), show_progress=False)
        ranked.append([paths[i] for i, s in zip(ids[0], scores[0]) if s > 0])
    out = {"spec": spec.name, "tok": tok, "bm25": bm25}
    out.update(metrics(ranked, [q.relevant for q in spec.queries], k))
    out.update({"files": len(files), "tokenize_s": round(tok_s, 3)})
    if tok == "sg":
        from engine.tokenize import tokenizer_id

        out["tokenizer"] = tokenizer_id()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="eval spec JSON (relative to the current directory or absolute)")
    ap.add_argument("--tok", choices=("plain", "sg"), default="plain")
    ap.add_argument("--bm25", choices=tuple(_BM25), default="bm25s")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    r = run(args.spec, args.tok, args.bm25)
    if args.json:
        print(json.dumps(r, ensure_ascii=False))
    else:
        print(
            f"{r['spec']}  tok={r['tok']}  bm25={r['bm25']}  P@1 {r['P@1']:.3f}  MRR@10 {r['MRR@10']:.3f}  "
            f"R@10 {r['R@10']:.3f}  n {r['n']}  (files {r['files']}, tokenize {r['tokenize_s']:.2f}s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
