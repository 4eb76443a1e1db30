"""Scale bench for the Qdrant backend: push N chunks into the embedded Qdrant engine (qdrant-edge) and, in the
same run, build the hnswlib index over the same vectors; report upsert throughput, index build time, p50/p95
query latency and RSS for each, with the CPU flags.

    python bench/qdrant_scale.py                      # 100K synthetic chunks: 384-d dense + sparse BM25 tokens
    python bench/qdrant_scale.py --n 20000 --multi 32 # also a 128-d multivector of 32 tokens per chunk
    python bench/qdrant_scale.py --store path/.sg/index.sqlite   # a real store: its chunks, vectors, tokens

Each backend runs in a subprocess of its own, so its RSS is its own. Synthetic data: unit vectors around 1,000
random centres (so HNSW has structure to find) and zipf-distributed words; queries are perturbed chunk vectors.
Writes bench/results/qdrant-scale-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = sorted(set(re.findall(r"\b(avx512_bf16|amx_bf16|avx512_vnni|avx512f|avx2)\b", text)))
    model = re.search(r"model name\s*:\s*(.*)", text)
    return f"{model.group(1) if model else '?'}; {' '.join(flags)}; {os.cpu_count()} cpus"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def synthetic(n: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    vecs = centres[rng.integers(0, 1000, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs


def synthetic_words(n: int, seed: int = 0, vocab: int = 50_000):
    rng = np.random.default_rng(seed + 1)
    p = 1 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    lengths = rng.integers(20, 160, n)
    words = rng.choice(vocab, size=int(lengths.sum()), p=p)
    out, at = [], 0
    for i, ln in enumerate(lengths):
        out.append((f"src mod{i % 500}", f"func w{words[at]}", " ".join(f"w{w}" for w in words[at:at + ln])))
        at += ln
    return out


def queries(vecs: np.ndarray, q: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = vecs[rng.integers(0, len(vecs), q)] + 0.3 * rng.normal(size=(q, vecs.shape[1])).astype(np.float32)
    return (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)


def pct(values: list[float]) -> dict:
    arr = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3)}


def run_hnswlib(args) -> dict:
    from engine.backends.local.ann import AnnIndex

    vecs = synthetic(args.n, args.dim)
    qs = queries(vecs, args.queries)
    base = rss_mb()
    t = time.perf_counter()
    ann = AnnIndex.build(args.dim, np.arange(args.n), vecs, m=16, ef_construction=200, ef_search=128)
    build = time.perf_counter() - t
    lat, recall = [], 0
    for q in qs:
        t = time.perf_counter()
        ids, _ = ann.search(q, 100)
        lat.append(time.perf_counter() - t)
        recall += len(set(ids[:10].tolist()) & set(np.argsort(-(vecs @ q))[:10].tolist()))
    return {"backend": "hnswlib (sg default)", "points": args.n, "build_s": round(build, 2),
            "points_per_s": round(args.n / build), "dense_top100": pct(lat),
            "recall@10": round(recall / (10 * len(qs)), 4), "rss_mb": round(rss_mb(), 1),
            "rss_over_data_mb": round(rss_mb() - base, 1)}


def run_edge(args) -> dict:
    from engine.backends.qdrant.index import (
        ChunkPoint,
        QdrantIndex,
        SpaceSpec,
        point_id,
        query_words,
        sparse_doc,
    )

    vecs = synthetic(args.n, args.dim)
    words = synthetic_words(args.n)
    qs = queries(vecs, args.queries)
    spaces = [SpaceSpec("dense", args.dim, False)] + ([SpaceSpec("multi", 128, True)] if args.multi else [])
    avgdl = float(np.mean([sum(len(c.split()) for c in w) for w in words]))
    rng = np.random.default_rng(5)
    directory = tempfile.mkdtemp(prefix="sg-qdrant-bench-")
    base = rss_mb()
    ix = QdrantIndex.open(directory, "bench", spaces, repository="bench", exact=False, hnsw_ef=128, batch=256)
    t = time.perf_counter()
    for start in range(0, args.n, 2048):
        pts = []
        for i in range(start, min(start + 2048, args.n)):
            vectors = {"dense": vecs[i], **sparse_doc(words[i], avgdl)}
            if args.multi:
                tok = rng.normal(size=(args.multi, 128)).astype(np.float32)
                tok /= np.linalg.norm(tok, axis=1, keepdims=True)
                vectors["multi"], vectors["multi-pooled"] = tok, tok.mean(0)
            pts.append(ChunkPoint(point_id("bench", f"f{i}", str(i)), {"repository": "bench", "path": f"src/f{i}.py"},
                                  vectors))
        ix.upsert(pts)
    ix.flush()
    upsert = time.perf_counter() - t
    t = time.perf_counter()
    ix.optimize()
    build = time.perf_counter() - t
    lat_dense, lat_sparse, lat_ms, recall = [], [], [], 0
    qwords = [query_words(words[i][2].split()[:4]) for i in range(args.queries)]
    for q, w in zip(qs, qwords):
        t = time.perf_counter()
        got = ix.dense("dense", q, 100)
        lat_dense.append(time.perf_counter() - t)
        exact = set(np.argsort(-(vecs @ q))[:10].tolist())
        top = sorted(got, key=lambda i: -got[i])[:10]
        recall += len(exact & set(_ids(ix, top)))
        t = time.perf_counter()
        ix.lexical(w, 100)
        lat_sparse.append(time.perf_counter() - t)
        if args.multi:
            qt = rng.normal(size=(16, 128)).astype(np.float32)
            t = time.perf_counter()
            ix.maxsim("multi", qt, qt.mean(0), 100)
            lat_ms.append(time.perf_counter() - t)
    out = {"backend": "qdrant-edge 0.9.0 (HNSW m16 ef128)", "points": args.n, "upsert_s": round(upsert, 2),
           "points_per_s": round(args.n / upsert), "optimize_s": round(build, 2), "dense_top100": pct(lat_dense),
           "sparse_bm25_top100 (incl. df lookup)": pct(lat_sparse), "recall@10": round(recall / (10 * len(qs)), 4),
           "rss_mb": round(rss_mb(), 1), "rss_over_data_mb": round(rss_mb() - base, 1),
           "disk_mb": round(sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file()) / 2**20, 1)}
    if lat_ms:
        out["maxsim_prefetch100"] = pct(lat_ms)
    ix.close()
    shutil.rmtree(directory, ignore_errors=True)
    return out


def _ids(ix, pids):
    """Point ids back to synthetic row numbers, through the payload path."""
    return [int(p["path"][5:-3]) for p in ix.payloads(pids).values()]


def run_store(args) -> dict:
    """A real store: push it (the sg code path) and query both backends with the store's own vectors."""
    from engine.backends.local.ann import AnnIndex
    from engine.backends.qdrant.index import QdrantIndex, SpaceSpec
    from engine.backends.qdrant.sync import PushSpace, push
    from engine.codec import get_codec
    from engine.store import Store

    store = Store(Path(args.store))
    spaces = []
    for name, sp in store.spaces().items():
        codec = get_codec(sp["codec"], **({"codebook": sp["codebook"]} if sp["codec"] == "pq" else {})) \
            if sp["multi"] else None
        routes = [r[0] for r in store.connection().execute("SELECT DISTINCT route FROM chunks")]
        spaces.append(PushSpace(SpaceSpec(name, sp["dim"], sp["multi"]), routes, codec))
    if args.backend == "hnswlib":
        sp = spaces[0]
        pairs = list(store.vectors_for_chunks(sp.spec.name, sp.routes))
        vecs = np.frombuffer(b"".join(p[1] for p in pairs), np.float32).reshape(len(pairs), sp.spec.dim)
        t = time.perf_counter()
        ann = AnnIndex.build(sp.spec.dim, np.asarray([p[0] for p in pairs]), vecs)
        build = time.perf_counter() - t
        lat = []
        for q in queries(vecs, args.queries):
            t = time.perf_counter()
            ann.search(q, 100)
            lat.append(time.perf_counter() - t)
        return {"backend": "hnswlib", "points": len(pairs), "build_s": round(build, 2),
                "points_per_s": round(len(pairs) / build), "dense_top100": pct(lat), "rss_mb": round(rss_mb(), 1)}
    directory = tempfile.mkdtemp(prefix="sg-qdrant-bench-")
    ix = QdrantIndex.open(directory, "bench", [s.spec for s in spaces], repository="bench", batch=256)
    t = time.perf_counter()
    rep = push(store, ix, "bench", spaces, repository="bench", files_per_batch=200)
    upsert = time.perf_counter() - t
    t = time.perf_counter()
    ix.optimize()
    build = time.perf_counter() - t
    sp = spaces[0]
    pairs = list(store.vectors_for_chunks(sp.spec.name, sp.routes))
    vecs = np.frombuffer(b"".join(p[1] for p in pairs), np.float32).reshape(len(pairs), sp.spec.dim)
    lat = []
    for q in queries(vecs, args.queries):
        t = time.perf_counter()
        ix.dense(sp.spec.name, q, 100)
        lat.append(time.perf_counter() - t)
    return {"backend": "qdrant-edge", "points": rep.points, "upsert_s": round(upsert, 2),
            "points_per_s": round(rep.points / max(upsert, 1e-9)), "optimize_s": round(build, 2),
            "dense_top100": pct(lat), "rss_mb": round(rss_mb(), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--multi", type=int, default=0, help="tokens per chunk in a 128-d multivector (0: none)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--store", help="a real index.sqlite instead of synthetic chunks")
    ap.add_argument("--name", default=None)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.backend:  # a child: one backend, one JSON line
        fn = run_store if args.store else (run_hnswlib if args.backend == "hnswlib" else run_edge)
        out = fn(args)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(out))
        return 0
    results = {"cpu": cpu_flags(), "load_average": os.getloadavg(), "n": args.n, "dim": args.dim, "multi": args.multi, "store": args.store,
               "backends": []}
    print(f"CPU: {results['cpu']}", flush=True)
    for backend in ("hnswlib", "edge"):
        cmd = [sys.executable, __file__, "--backend", backend, "--n", str(args.n), "--dim", str(args.dim),
               "--multi", str(args.multi), "--queries", str(args.queries)] + (["--store", args.store] if args.store else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        results["backends"].append(res)
        print(json.dumps(res), flush=True)
    name = args.name or (Path(args.store).parent.parent.name if args.store else f"synthetic-{args.n}")
    dest = Path(__file__).resolve().parent / "results" / f"qdrant-scale-{name}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
