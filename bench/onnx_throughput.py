"""Encoder throughput of every runtime/precision of the offline default, in one run, on sg's real inputs.

    nice -n 10 .venv/bin/python bench/onnx_throughput.py [--n 1500] [--paths torch-fp32 torch-bf16 onnx-fp32 ...]

Embeds the first N CoSQA functions, chunked and rendered exactly as `sg index` does (batches sorted by length,
sg's token cap), with MiniLM + sg's adapter through: torch fp32, torch bf16, torch int8, ONNX Runtime fp32 and
each ONNX int8 variant. Paths alternate for `--rounds` rounds and keep their best time. Prints tokens/s, the ratio
to torch fp32 and the worst cosine against torch fp32, with the CPU's flags; writes bench/results/onnx_throughput.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._spec import BENCH  # noqa: E402
from engine.embed.ort import VARIANTS, OrtEmbedder  # noqa: E402
from engine.embed.precision import cpu_flags  # noqa: E402
from engine.embed.sentence import default_recipe  # noqa: E402
from engine.embed.transformer import TransformerEmbedder  # noqa: E402

PATHS = ["torch-fp32", "torch-bf16", "torch-int8"] + [f"onnx-{v}" for v in VARIANTS]


def rendered(n: int) -> list[str]:
    from engine import render_for_embedding
    files = sorted((BENCH / "cosqa" / "corpus").iterdir())[:n]
    chunks = []
    for f in files:
        chunks += corpus_chunks_of(f)
    return [render_for_embedding(c) for c in chunks]


def corpus_chunks_of(path: Path) -> list:
    from engine import chunk as chunking
    from engine.settings import load_settings

    settings = load_settings(None)
    return list(chunking.chunk_file(path.name, path.read_text(encoding="utf-8", errors="replace"),
                                    settings.index))


def make(path: str, threads: int, batch: int):
    recipe = default_recipe(True)
    base = TransformerEmbedder(recipe, threads=threads, batch_size=batch)
    runtime, precision = path.split("-", 1)
    if runtime == "torch":
        return TransformerEmbedder(dataclasses.replace(recipe, precision=precision), threads=threads,
                                   batch_size=batch)
    return OrtEmbedder(recipe, precision, base.ident, threads=threads, batch_size=batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--paths", nargs="*", default=PATHS)
    args = ap.parse_args()
    flags = cpu_flags()
    texts = rendered(args.n)
    embs = {p: make(p, args.threads, args.batch_size) for p in args.paths}
    for p, e in embs.items():
        t0 = time.perf_counter()
        e.load()
        e.embed_documents(texts[:32])
        print(f"loaded {p} in {time.perf_counter() - t0:.1f} s", flush=True)
    tokens = sum(embs[args.paths[0]].count_tokens(texts))
    best = {p: float("inf") for p in embs}
    vecs: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for p, e in embs.items():
            t0 = time.perf_counter()
            vecs[p] = e.embed_documents(texts)
            best[p] = min(best[p], time.perf_counter() - t0)
    ref = vecs.get("torch-fp32")
    rows = {}
    for p in embs:
        row = {"seconds": round(best[p], 2), "tokens_per_s": round(tokens / best[p])}
        if ref is not None:
            row["vs_torch_fp32"] = round(best["torch-fp32"] / best[p], 2)
            row["worst_cosine"] = float(np.min(np.sum(ref * vecs[p], axis=1)))
            row["mean_cosine"] = float(np.mean(np.sum(ref * vecs[p], axis=1)))
        rows[p] = row
    out = {"cpu_flags": flags, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "chunks": len(texts), "functions": args.n, "tokens": tokens, "batch_size": args.batch_size,
           "threads": args.threads, "rounds": args.rounds, "paths": rows, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(f"CPU flags: {' '.join(flags)}; {len(texts)} chunks of {args.n} CoSQA functions, {tokens} tokens, "
          f"batch {args.batch_size}")
    print(f"{'path':18} {'tokens/s':>9} {'vs torch':>8} {'worst cos':>10} {'mean cos':>9}")
    for p, r in rows.items():
        print(f"{p:18} {r['tokens_per_s']:9d} {r.get('vs_torch_fp32', 0):7.2f}x {r.get('worst_cosine', 0):10.6f} "
              f"{r.get('mean_cosine', 0):9.6f}")
    res = ROOT / "bench" / "results"
    res.mkdir(exist_ok=True)
    (res / "onnx_throughput.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
