"""Candidate search without hnswlib: exact numpy search (engine/backends/local/exact_index.py) against hnswlib,
same run.

    nice -n 10 .venv/bin/python bench/ann_exact.py [--sizes 6000 100000] [--k 100] [--queries 200]

Random L2-normalised 384-d vectors (MiniLM's width); p50/p95 of one query's top-k through AnnIndex, build time,
and recall@k of hnswlib against the exact answer. Prints the CPU flags; writes bench/results/ann_exact.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.backends.local import ann  # noqa: E402
from engine.backends.local.ann import AnnIndex  # noqa: E402
from engine.backends.local.exact_index import ExactIndex  # noqa: E402
from engine.embed.precision import cpu_flags  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def exact_index(dim: int, ids: np.ndarray, vecs: np.ndarray) -> AnnIndex:
    idx = ExactIndex("ip", dim)
    idx.init_index(len(ids))
    idx.add_items(vecs / np.linalg.norm(vecs, axis=1, keepdims=True), ids)
    return AnnIndex(idx, dim, 128)


def timed(index: AnnIndex, queries: np.ndarray, k: int) -> tuple[dict, list[np.ndarray]]:
    index.search(queries[0], k)
    lat, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        ids, _ = index.search(q, k)
        lat.append((time.perf_counter() - t0) * 1000)
        found.append(ids)
    # min as well: on a shared machine the percentiles measure the scheduler as much as the search
    return {"min_ms": round(min(lat), 3), "p50_ms": round(pct(lat, 50), 3), "p95_ms": round(pct(lat, 95), 3)}, found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", type=int, default=[6000, 100000])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=100, help="candidates per query (search.candidates)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--no-hnswlib", action="store_true", help="time exact search only")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    out = {"cpu_flags": list(cpu_flags()), "dim": args.dim, "k": args.k, "sizes": {}}
    print(f"CPU flags: {' '.join(cpu_flags())}; {args.dim}-d, top-{args.k}, {args.queries} queries")
    for n in args.sizes:
        vecs = rng.standard_normal((n, args.dim)).astype(np.float32)
        queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
        ids = np.arange(n)
        t0 = time.perf_counter()
        exact = exact_index(args.dim, ids, vecs)
        row = {"exact_build_s": round(time.perf_counter() - t0, 2)}
        row["exact"], truth = timed(exact, queries, args.k)
        row["exact_mb"] = round(vecs.nbytes / 1e6, 1)
        if ann.hnswlib is not None and not args.no_hnswlib:
            t0 = time.perf_counter()
            hnsw = AnnIndex.build(args.dim, ids, vecs)
            row["hnswlib_build_s"] = round(time.perf_counter() - t0, 2)
            row["hnswlib"], got = timed(hnsw, queries, args.k)
            row["hnswlib_recall"] = round(float(np.mean([len(set(a.tolist()) & set(b.tolist())) / args.k
                                                         for a, b in zip(got, truth)])), 4)
        out["sizes"][n] = row
        print(f"{n:>7} vectors: exact min {row['exact']['min_ms']} ms p50 {row['exact']['p50_ms']} ms p95 {row['exact']['p95_ms']} ms "
              f"(build {row['exact_build_s']} s, {row['exact_mb']} MB)"
              + (f"; hnswlib p50 {row['hnswlib']['p50_ms']} ms p95 {row['hnswlib']['p95_ms']} ms, build "
                 f"{row['hnswlib_build_s']} s, recall@{args.k} {row['hnswlib_recall']}" if "hnswlib" in row else ""),
              flush=True)
    res = ROOT / "bench" / "results"
    res.mkdir(exist_ok=True)
    (res / "ann_exact.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
