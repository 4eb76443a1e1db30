"""Teacher scores for distilling sg's dense default into a ColBERT student (stage 1 of 2).

Runs in sg's venv (it embeds with sg's own served model), before tools.pylate.train:
    .venv/bin/python -m tools.pylate.teacher configs/pylate_colbert_minilm.yaml

Reads the pairs the public-code recipe mines (the `pairs` setting), takes the first `max_pairs` after the same
seeded shuffle train.py uses, embeds every query and every positive with sg's default code model (the offline
MiniLM with sg's adapter, exactly as `sg index` serves it), and writes `kd.jsonl` into out_dir: for each query,
its positive, its mined hard negatives, and the teacher's nearest other positives, `n_ways` documents in all, each
with the teacher's cosine. train.py's Distillation stage learns to rank those candidates as the teacher does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tools.pylate.train import load_config, read_pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.pylate.teacher", description=__doc__.split("\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--smoke", action="store_true", help="the config's smoke settings")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.smoke)
    from engine import load_settings
    from engine.embed.registry import load_embedders

    rows = read_pairs(cfg, args.smoke)
    settings = load_settings(None, {"models": {"threads": cfg.threads}})
    embedders, reports = load_embedders(settings.models, eager=True)
    teacher = embedders["code"]
    if teacher is None:
        raise SystemExit("no dense model loads here: " + "; ".join(r.note for r in reports))
    started = time.time()
    docs = [r["positive"] for r in rows]
    negs = [(i, n) for i, r in enumerate(rows) for n in (r.get("negatives") or [])[: cfg.negatives]]
    d = _unit(teacher.embed_documents(docs))
    nv = _unit(teacher.embed_documents([n for _, n in negs])) if negs else np.zeros((0, d.shape[1]), np.float32)
    q = _unit(teacher.embed_queries([r["query"] for r in rows]))
    print(f"teacher {teacher.name}: {len(rows)} queries, {len(docs) + len(negs)} documents in "
          f"{time.time() - started:.0f} s", flush=True)
    by_query: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(negs):
        by_query.setdefault(i, []).append(k)
    out = Path(cfg.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    with (out / "kd.jsonl").open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            cands, vecs = [row["positive"]], [d[i]]
            for k in by_query.get(i, []):
                cands.append(negs[k][1])
                vecs.append(nv[k])
            sims = d @ q[i]
            sims[i] = -np.inf
            for j in np.argsort(-sims)[: max(0, cfg.n_ways - len(cands))]:
                cands.append(docs[j])
                vecs.append(d[j])
            scores = [round(float(np.dot(v, q[i])), 5) for v in vecs]
            fh.write(json.dumps({"query": row["query"], "documents": cands, "scores": scores}) + "\n")
    print(f"wrote {out / 'kd.jsonl'} ({len(rows)} queries, {cfg.n_ways} ways) in {time.time() - started:.0f} s",
          flush=True)
    return 0


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


if __name__ == "__main__":
    sys.exit(main())
