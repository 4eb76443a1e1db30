"""sg/search latency through the language server (stdio) next to Engine.search in-process, on one corpus.

    .venv/bin/python bench/lsp_latency.py                      # CoSQA corpus, 200 queries, hybrid, k=10
    .venv/bin/python bench/lsp_latency.py --queries 50 --mode lexical

Measures, per query and interleaved (so both see the same machine load): Engine.search in this process; the
server's own time for sg/search (`elapsedMs`: engine + LSP translation); the client's round trip over stdio
(framing, JSON, scheduling) for that same request.
The index lives in a cache dir (never inside ../shared, which is read-only). Prints a table, writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "reliability"))

from bench._spec import BENCH, load_spec  # noqa: E402
from rellib import Raw  # noqa: E402

from engine.search import Engine  # noqa: E402
from engine.settings import load_settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 0.5), "p95": pct(values, 0.95), "mean": statistics.fmean(values),
            "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(BENCH / "cosqa" / "dev.json"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--mode", default="hybrid", choices=["hybrid", "semantic", "lexical"])
    ap.add_argument("--lexical-only", action="store_true", help="models disabled (no embeddings at all)")
    # 1 by default: on a small shared CPU, 2 intra-op threads stall each other and the comparison turns to noise.
    ap.add_argument("--threads", type=int, default=1, help="models.threads for both sides (0: engine default)")
    ap.add_argument("--index-dir", help="default: <tmp>/sg-bench/<spec>-index (reused between runs)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lsp_latency.json"))
    args = ap.parse_args()

    spec = load_spec(args.spec)
    queries = [q.query for q in spec.queries][: args.queries]
    suffix = "lexical" if args.lexical_only else "models"
    index_dir = Path(args.index_dir or Path(tempfile.gettempdir()) / "sg-bench" / f"{spec.name}-index-{suffix}")
    index_dir.mkdir(parents=True, exist_ok=True)
    overrides = {"index": {"index_dir": str(index_dir)}, "models": {"threads": args.threads}}
    if args.lexical_only:
        overrides["models"]["enabled"] = False

    # 1. In-process engine: build (or refresh) the index.
    eng = Engine(spec.corpus, load_settings(spec.corpus, overrides))
    t0 = time.perf_counter()
    rep = eng.index(progress=lambda phase, done, total: print(f"\r  {phase} {done}/{total}   ", end="",
                                                               file=sys.stderr, flush=True))
    print(f"\nindex: {rep.files} files, {rep.chunks} chunks, {rep.embedded} embedded, "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)

    # 2. The language server over stdio on the same index (the in-process engine stays open: both only read).
    client = Raw()

    def request(method: str, params: dict) -> dict:
        msg = client.call(method, params, timeout=600)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg["result"]

    t0 = time.perf_counter()
    client.initialize(spec.corpus, overrides)
    client.wait_ready(timeout=600)
    ready_s = time.perf_counter() - t0
    for q in queries[:5]:
        eng.search(q, k=args.k, mode=args.mode)
        request("sg/search", {"query": q, "limit": args.k, "mode": args.mode})

    # 3. Interleaved timing: the same query in-process, then through the server.
    engine_ms, server_ms, round_trip_ms = [], [], []
    same_top = 0
    for q in queries:
        t = time.perf_counter()
        mine = eng.search(q, k=args.k, mode=args.mode)
        engine_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        res = request("sg/search", {"query": q, "limit": args.k, "mode": args.mode})
        round_trip_ms.append((time.perf_counter() - t) * 1000)
        server_ms.append(res["elapsedMs"])
        same_top += bool(mine.hits and res["results"] and res["results"][0]["path"] == mine.hits[0].path)
    models = eng.model_names()
    eng.close()
    client.shutdown(timeout=30)

    rows = {"engine (in-process Engine.search)": summary(engine_ms),
            "server (sg/search elapsedMs)": summary(server_ms),
            "client round trip over stdio": summary(round_trip_ms)}
    print(f"\n{spec.name}: {len(queries)} queries, k={args.k}, mode={args.mode}, models={models}")
    print(f"server ready on the existing index in {ready_s:.1f} s; same top hit in-process and via the server: "
          f"{same_top}/{len(queries)}\n")
    print(f"{'':36} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for name, s in rows.items():
        print(f"{name:36} {s['p50']:8.1f} {s['p95']:8.1f} {s['mean']:8.1f} {s['max']:8.1f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "lsp_latency", "spec": spec.name, "queries": len(queries), "k": args.k, "mode": args.mode,
        "models": models, "index": {"files": rep.files, "chunks": rep.chunks},
        "server_ready_seconds": round(ready_s, 2), "same_top_hit": same_top, "latency_ms": rows,
        "load_average": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
