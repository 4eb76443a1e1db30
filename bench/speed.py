"""Speed bench: indexing time, warm search latency (p50/p95, query encoding included) next to the bare query
encoder and to FTS5-ranked lexical search (the one-shot path) in the same run, index size per chunk and per
token, peak RSS.

    python bench/speed.py --corpus ../shared/bench/cosqa/corpus [--queries ../shared/bench/cosqa/dev.json]
    python bench/speed.py --corpus .venv/lib/python3.11/site-packages --name site-packages   # a large real store

Writes bench/results/speed-<name>.json.
"""

from __future__ import annotations

import argparse
import sqlite3
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, render_for_embedding  # noqa: E402
from engine.settings import load_settings  # noqa: E402

DEFAULT_QUERIES = ["read a json file", "retry with exponential backoff", "parse command line arguments",
                   "convert a string to a datetime", "check if a variable is iterable", "sort a dictionary by value",
                   "open a socket connection", "compute the md5 hash of a file", "remove duplicates from a list",
                   "load configuration from yaml"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--name", default=None)
    ap.add_argument("--queries", help="an eval spec whose queries to time (default: a fixed list)")
    ap.add_argument("--n", type=int, default=200, help="number of timed searches")
    ap.add_argument("--index-dir", help="reuse an index (default: a fresh temp dir)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the encoder (0: torch's default)")
    ap.add_argument("--modes", nargs="*", default=["lexical", "semantic", "hybrid"])
    args = ap.parse_args()
    name = args.name or Path(args.corpus).name
    index_dir = Path(args.index_dir or tempfile.mkdtemp(prefix="sg-speed-"))
    settings = load_settings(None, {"index": {"index_dir": str(index_dir)}, "models": {"threads": args.threads}})
    eng = Engine(args.corpus, settings)
    out: dict = {"corpus": str(Path(args.corpus).resolve()), "index_dir": str(index_dir)}

    t0 = time.perf_counter()
    rep = eng.index(embed=False)
    out["index_lexical_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep2 = eng.index(embed=False)
    out["reindex_unchanged_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep3 = eng.index(embed=True)
    out["embed_s"] = time.perf_counter() - t0
    out.update(files=rep.files, chunks=rep3.chunks, embedded=rep3.embedded, unchanged_changed=rep2.changed)

    if args.queries:
        queries = [q["query"] for q in json.loads(Path(args.queries).read_text())["queries"]]
    else:
        queries = DEFAULT_QUERIES
    queries = (queries * (args.n // len(queries) + 1))[: args.n]

    def timed(mode: str) -> dict:
        eng.search(queries[0], mode=mode)
        lat = []
        for q in queries:
            t = time.perf_counter()
            eng.search(q, k=10, mode=mode)
            lat.append((time.perf_counter() - t) * 1000)
        return {"p50": pct(lat, 50), "p95": pct(lat, 95), "mean": statistics.mean(lat)}

    if "lexical" in args.modes:  # the baseline: FTS5 ranks, as in a one-shot `sg search`
        out["search_lexical_fts5_ms"] = timed("lexical")
    t0 = time.perf_counter()
    eng.warm(wait=True)  # the language server's state: BM25 postings in memory too
    out["postings_read_s"] = time.perf_counter() - t0
    out["postings_mb"] = eng.backend.lexical.nbytes / 1e6
    sp = next(iter(eng.spaces.values()), None)
    if sp is not None:
        sp.embedder.embed_queries(["warm up"])
        enc = []
        for q in queries:
            t = time.perf_counter()
            sp.embedder.embed_queries([q])
            enc.append((time.perf_counter() - t) * 1000)
        out["bare_query_encoding_ms"] = {"p50": pct(enc, 50), "p95": pct(enc, 95)}
    for mode in args.modes:
        out[f"search_{mode}_ms"] = timed(mode)

    db = sum(f.stat().st_size for f in index_dir.glob("index.sqlite*"))
    ann = sum(f.stat().st_size for f in index_dir.glob("*.hnsw*"))
    con = sqlite3.connect(f"file:{eng.status()['index']}?mode=ro", uri=True)  # the bench reads sizes directly
    vec_bytes = con.execute("SELECT COALESCE(SUM(LENGTH(vec)), 0) + COALESCE(SUM(LENGTH(tokens)), 0) "
                            "FROM vectors").fetchone()[0]
    tokens = 0
    if sp is not None:  # model tokens of every chunk as embedded (rendered, truncated): the per-token size
        rows = [SimpleNamespace(path=p, symbol=sym, text=t)
                for p, sym, t in con.execute("SELECT f.path, c.symbol, c.text FROM chunks c JOIN files f ON f.id = c.file_id")]
        for start in range(0, len(rows), 2000):
            tokens += sum(sp.embedder.count_tokens([render_for_embedding(r) for r in rows[start:start + 2000]]))
    out.update(store_bytes=db, ann_bytes=ann, vector_bytes=vec_bytes, tokens=tokens,
               bytes_per_chunk=(db + ann) / max(out["chunks"], 1),
               bytes_per_token=(db + ann) / max(tokens, 1) if tokens else None,
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    eng.close()
    res_dir = Path(__file__).resolve().parent / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / f"speed-{name}.json").write_text(json.dumps(out, indent=1))
    for k, v in out.items():
        print(f"{k:26} {json.dumps(v) if isinstance(v, dict) else v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
