"""The encoder in fp32 and int8 (models.precision): throughput and quality side by side, in one run.

    python bench/int8_encoder.py [--specs cosqa repo-click repo-pytest clones] [--threads 0] [--variants none int8]

For each variant of the offline default model (models.precision fp32, int8, bf16):
  - bare encoder: tokens/s embedding 2,000 CoSQA corpus chunks (rendered as sg indexes them, batched by length);
  - indexing path: `Engine.index` of the whole CoSQA corpus into a fresh directory (discover, chunk, FTS, embed,
    store, ANN), tokens/s over the whole run;
  - quality: semantic and hybrid MRR@10 of `sg eval` on each spec (each variant has its own indexes; the CoSQA
    one is the index just built).
Prints a table and writes bench/results/int8_encoder.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import shutil
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._spec import BENCH, SPECS, corpus_chunks  # noqa: E402
from engine.embed.registry import load_embedders  # noqa: E402
from engine.eval import run_eval  # noqa: E402
from engine import Engine, render_for_embedding  # noqa: E402
from engine.settings import load_settings  # noqa: E402


def settings_for(variant: str, threads: int, index_dir: Path | None = None):
    over = {"models": {"precision": variant, "threads": threads}}
    if index_dir is not None:
        over["index"] = {"index_dir": str(index_dir)}
    return load_settings(None, over)


def encoder_speed(emb, texts: list[str]) -> dict:
    tokens = sum(emb.count_tokens(texts))
    emb.embed_documents(texts[:64])
    t0 = time.perf_counter()
    emb.embed_documents(texts)
    s = time.perf_counter() - t0
    return {"model": emb.ident, "tokens": tokens, "seconds": round(s, 1), "tokens_per_s": round(tokens / s)}


def index_speed(variant: str, threads: int, corpus: Path, tokens: int, index_dir: Path) -> dict:
    shutil.rmtree(index_dir, ignore_errors=True)
    eng = Engine(corpus, settings_for(variant, threads, index_dir))
    t0 = time.perf_counter()
    rep = eng.index()
    s = time.perf_counter() - t0
    eng.close()
    return {"chunks": rep.chunks, "seconds": round(s, 1), "tokens_per_s": round(tokens / s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="*", default=["cosqa", "repo-click", "repo-pytest", "clones"])
    ap.add_argument("--variants", nargs="*", default=["fp32", "int8", "bf16"])
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    cosqa = BENCH / "cosqa" / "corpus"
    texts = [render_for_embedding(c) for c in corpus_chunks(cosqa)]
    cache = Path(os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg") / "bench-int8"
    out: dict = {"threads": args.threads, "variants": {}}
    tokens = 0  # the whole corpus as the model reads it (one tokenizer for every precision)
    for variant in args.variants:
        emb = load_embedders(settings_for(variant, args.threads).models)[0]["code"].load()
        tokens = tokens or sum(emb.count_tokens(texts))
        row: dict = {"encoder": encoder_speed(emb, texts[:2000])}
        del emb  # free its weights before the engine below loads its own
        row["index"] = index_speed(variant, args.threads, cosqa, tokens, cache / variant / "cosqa")
        for name in args.specs:
            for mode in ("semantic", "hybrid"):
                res = run_eval(BENCH / SPECS[name], mode=mode, settings=settings_for(variant, args.threads),
                               index_dir=cache / variant / name)
                row[f"{name}|{mode}"] = res.as_dict()
        out["variants"][variant] = row
        print(f"{variant:5} encoder {row['encoder']['tokens_per_s']:6} tok/s  index {row['index']['tokens_per_s']:6} "
              f"tok/s  " + "  ".join(f"{k} {v['MRR@10']:.4f}" for k, v in row.items() if "|" in k), flush=True)
    base = out["variants"].get("fp32")
    if base:
        for variant, row in out["variants"].items():
            row["mrr_loss_vs_fp32"] = {k: round(base[k]["MRR@10"] - v["MRR@10"], 4) for k, v in row.items() if "|" in k}
            row["encoder_speedup"] = round(row["encoder"]["tokens_per_s"] / base["encoder"]["tokens_per_s"], 2)
    path = Path(__file__).resolve().parent / "results" / "int8_encoder.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({v: {"speedup": r.get("encoder_speedup"), "loss": r.get("mrr_loss_vs_fp32")}
                      for v, r in out["variants"].items()}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
