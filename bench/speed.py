"""Speed bench: indexing time, warm search latency (p50/p95, query encoding included) next to the bare query
encoder and to FTS5-ranked lexical search (the one-shot path) in the same run, index size per chunk and per
token, peak RSS.

    python bench/speed.py --corpus ../shared/bench/cosqa/corpus [--queries ../shared/bench/cosqa/dev.json]
    python bench/speed.py --corpus .venv/lib/python3.11/site-packages --name site-packages   # a large real store
    python bench/speed.py --corpus ../shared/bench/cosqa/corpus --model-path DIR --scale 100000   # a 100K store

--model-path and --codec pick the model and the token codec (index.token_codec) as `sg` would. --scale N builds
a store of about N chunks from copies of the corpus (each copy under its own directory, so the lexical index,
the store and hnswlib really hold N chunks); embedding N chunks would take hours here, so the document vectors
are the model's real vectors of the corpus's own chunks, replayed with a little noise (each copy's chunk gets
a different one), while every query is encoded by the real model. Latency, not quality, is what it measures.

Writes bench/results/speed-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, render_for_embedding  # noqa: E402  (engine first: it sets numpy's BLAS threads)
import numpy as np  # noqa: E402
from engine.embed.precision import cpu_flags  # noqa: E402
from engine.embed.registry import load_embedders  # noqa: E402
from engine.settings import load_settings  # noqa: E402

DEFAULT_QUERIES = ["read a json file", "retry with exponential backoff", "parse command line arguments",
                   "convert a string to a datetime", "check if a variable is iterable", "sort a dictionary by value",
                   "open a socket connection", "compute the md5 hash of a file", "remove duplicates from a list",
                   "load configuration from yaml"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Replay:
    """Stands in for a model's document side at --scale: a real vector of the corpus, picked by the text's hash,
    plus noise. Queries go to the real model."""

    def __init__(self, model, pool: list, seed: int = 0):
        self.model, self.pool = model, pool
        for attr in ("name", "ident", "dim", "multi_vector", "max_length"):
            setattr(self, attr, getattr(model, attr))
        self.rng = np.random.default_rng(seed)

    def embed_queries(self, texts):
        return self.model.embed_queries(texts)

    def count_tokens(self, texts):
        return self.model.count_tokens(texts)

    def embed_documents(self, texts):
        out = []
        for t in texts:
            v = self.pool[zlib.crc32(t.encode("utf-8", "replace")) % len(self.pool)]
            v = v + 0.02 * self.rng.standard_normal(v.shape).astype(np.float32)
            out.append(v / np.linalg.norm(v, axis=-1, keepdims=True))
        return out if self.multi_vector else np.stack(out)


def scaled_corpus(corpus: Path, dest: Path, target: int, chunks_per_copy: int) -> Path:
    """Copies of `corpus` under dest/cNN/ until about `target` chunks (kept between runs)."""
    copies = max(1, -(-target // max(chunks_per_copy, 1)))
    for i in range(copies):
        d = dest / f"c{i:02d}"
        if not d.exists():
            shutil.copytree(corpus, d)
    return dest


def replay_engine(corpus: str, settings, scale: int, work: Path):
    """An engine over about `scale` chunks of copies of `corpus`, its document vectors replayed (see Replay)."""
    embedders, reports = load_embedders(settings.models, eager=True)
    base = Engine(corpus, settings, embedders=(embedders, reports))
    chunks = list(base.iter_chunks()) if base.status()["chunks"] else []
    if not chunks:
        base.index(embed=False)
        chunks = list(base.iter_chunks())
    sample = chunks[:: max(1, len(chunks) // 2000)][:2000]
    replayed = {}
    for route, emb in embedders.items():
        if emb is not None:
            pool = emb.embed_documents([render_for_embedding(c) for c in sample])
            replayed[route] = Replay(emb, list(pool))
    base.close()
    root = scaled_corpus(Path(corpus), work / "corpus", scale, len(chunks))
    settings.index.index_dir = str(work / "index")
    return Engine(root, settings, embedders=(replayed, reports)), root


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--name", default=None)
    ap.add_argument("--queries", help="an eval spec whose queries to time (default: a fixed list)")
    ap.add_argument("--n", type=int, default=200, help="number of timed searches")
    ap.add_argument("--index-dir", help="reuse an index (default: a fresh temp dir)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the encoder (0: torch's default)")
    ap.add_argument("--modes", nargs="*", default=["lexical", "semantic", "hybrid"])
    ap.add_argument("--model-path", help="serve this model (models.model_path) instead of the default")
    ap.add_argument("--codec", help="index.token_codec for a multi-vector model (fp32, fp16, int8, pq)")
    ap.add_argument("--scale", type=int, default=0, help="build a store of about this many chunks (see above)")
    ap.add_argument("--runtime", choices=("auto", "torch", "onnx"), help="models.runtime (default: auto)")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), help="models.precision (default: auto)")
    args = ap.parse_args()
    name = args.name or Path(args.corpus).name + (f"-{args.scale}" if args.scale else "")
    index_dir = Path(args.index_dir or tempfile.mkdtemp(prefix="sg-speed-"))
    overrides: dict = {"index": {"index_dir": str(index_dir)}, "models": {"threads": args.threads}}
    if args.model_path:
        overrides["models"]["model_path"] = args.model_path
    if args.codec:
        overrides["index"]["token_codec"] = args.codec
    for key in ("runtime", "precision"):
        if getattr(args, key):
            overrides["models"][key] = getattr(args, key)
    settings = load_settings(None, overrides)
    out: dict = {"cpu_flags": cpu_flags(), "model_path": args.model_path, "codec": settings.index.token_codec,
                 "runtime": settings.models.runtime, "precision": settings.models.precision}
    if args.scale:
        eng, root = replay_engine(args.corpus, settings, args.scale, index_dir / "scale")
        index_dir = Path(settings.index.index_dir)
    else:
        eng, root = Engine(args.corpus, settings), args.corpus
    out.update(corpus=str(Path(root).resolve()), index_dir=str(index_dir))

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
