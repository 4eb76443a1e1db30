"""Token-vector codecs: bytes per stored token vector and the MRR@10 each costs against fp32, in one run.

    python bench/codecs.py [--specs cosqa repo-click repo-pytest] [--candidates 100] [--threads 0] [--model-path DIR]

With --model-path, the late-interaction model there (a PyLate or Stanford ColBERT directory, as sg serves it).
Without, the offline MiniLM is run as a multi-vector model (its normalised last-layer token vectors), exactly as
sg stores token vectors for XTR / Jina-ColBERT. Each chunk's matrix is encoded with every codec (fp32, fp16, int8, pq with
the default 64 subspaces, pq with 32), the top `--candidates` chunks by pooled cosine are re-ranked by exact
MaxSim on the decoded vectors, and MRR@10 is compared with fp32. Plain MiniLM was not trained for MaxSim (it
ranks worse than its pooled vector), so there the absolute MRR is not the point: the loss each codec adds is.
Writes bench/results/codecs.json (codecs-<model dir name>.json with --model-path).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._spec import BENCH, SPECS, corpus_chunks  # noqa: E402
from engine.codec import PQCodec, get_codec  # noqa: E402
from engine.embed.sentence import default_recipe  # noqa: E402
from engine.embed.transformer import TransformerEmbedder  # noqa: E402
from engine.eval import load_spec, rank_of  # noqa: E402
from engine.records import Hit  # noqa: E402
from engine.score import maxsim_packed  # noqa: E402
from engine import load_settings, render_for_embedding  # noqa: E402
from engine.embed.precision import cpu_flags  # noqa: E402
from engine.embed.registry import load_embedders  # noqa: E402


def run_spec(name: str, emb, candidates: int) -> list[dict]:
    spec = load_spec(BENCH / SPECS[name])
    chunks = corpus_chunks(spec.corpus)
    t0 = time.perf_counter()
    mats = emb.embed_documents([render_for_embedding(c) for c in chunks])
    queries = emb.embed_queries([q.query for q in spec.queries])
    embed_s = time.perf_counter() - t0
    pooled = np.stack([m.mean(axis=0) / (np.linalg.norm(m.mean(axis=0)) or 1.0) for m in mats]).astype(np.float32)
    sample = np.concatenate(mats)[np.random.default_rng(0).permutation(sum(len(m) for m in mats))[:60_000]]
    codecs = {"fp32": get_codec("fp32"), "fp16": get_codec("fp16"), "int8": get_codec("int8"),
              "pq64": PQCodec.train(sample, seed=0), "pq32": PQCodec.train(sample, seed=0, subspaces=32)}
    rows, base = [], None
    for cname, codec in codecs.items():
        blobs = [codec.encode(m) for m in mats]
        tokens = sum(len(m) for m in mats)
        rr, decode_ms = [], []
        for qi, q in enumerate(spec.queries):
            qtok = queries[qi]
            qp = qtok.mean(axis=0)
            cand = np.argsort(-(pooled @ (qp / (np.linalg.norm(qp) or 1.0))))[:candidates]
            t = time.perf_counter()
            flat, counts = codec.decode_many([blobs[i] for i in cand], emb.dim)
            decode_ms.append((time.perf_counter() - t) * 1000)
            ms = maxsim_packed(qtok, flat, counts)
            order = cand[np.argsort(-ms, kind="stable")][:10]
            hits = [Hit(0, chunks[j].path, chunks[j].symbol, chunks[j].kind, "", 0, 0, 0, 0, 0.0, "") for j in order]
            rank = rank_of(hits, q.relevant)
            rr.append(1.0 / rank if rank else 0.0)
        mrr = float(np.mean(rr))
        base = mrr if base is None else base
        rows.append({"spec": name, "codec": cname, "bytes_per_token": round(sum(map(len, blobs)) / tokens, 2),
                     "payload_bytes_per_token": codec.bytes_per_vector(emb.dim), "MRR@10": round(mrr, 4),
                     "loss_vs_fp32": round(base - mrr, 4), "decode_ms_p50": round(float(np.median(decode_ms)), 2),
                     "tokens": tokens, "chunks": len(chunks), "queries": len(spec.queries),
                     "embed_seconds": round(embed_s, 1)})
        r = rows[-1]
        print(f"{name:12} {cname:5} {r['bytes_per_token']:8.1f} B/token  MRR@10 {r['MRR@10']:.4f} "
              f"(loss {r['loss_vs_fp32']:+.4f})  decode p50 {r['decode_ms_p50']:.2f} ms", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="*", default=["cosqa", "repo-click", "repo-pytest"])
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--model-path", help="a late-interaction model directory (default: plain MiniLM's tokens)")
    args = ap.parse_args()
    if args.model_path:
        settings = load_settings(None, {"models": {"model_path": args.model_path, "threads": args.threads}})
        emb = load_embedders(settings.models, eager=True)[0]["code"]
        if emb is None or not emb.multi_vector:
            raise SystemExit(f"{args.model_path}: not a multi-vector model sg can load")
    else:
        recipe = dataclasses.replace(default_recipe(False), multi_vector=True)
        emb = TransformerEmbedder(recipe, threads=args.threads).load()
    print(f"CPU: {', '.join(cpu_flags())}; model {emb.name}, {emb.dim}-d", flush=True)
    rows = [r for name in args.specs for r in run_spec(name, emb, args.candidates)]
    name = f"codecs-{Path(args.model_path).name}.json" if args.model_path else "codecs.json"
    out = Path(__file__).resolve().parent / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpu_flags": cpu_flags(), "model": emb.name, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
