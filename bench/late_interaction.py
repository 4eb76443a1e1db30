"""sg's default (single-vector MiniLM + adapter) against a late-interaction model, side by side, in one run.

    nice -n 10 .venv/bin/python bench/late_interaction.py --model-path DIR [--specs cosqa repo-click repo-pytest clones]

For each dev set and each model: semantic and hybrid MRR@10 through `run_eval` (the engine's own path: hnswlib
candidates, exact MaxSim rerank on the stored token vectors for the multi-vector model), the embedding time and
the ship rule of issue #16 (hybrid MRR@10 averaged over the sets beats the default, no set loses more than 0.01).
Indexes are kept in ~/.cache/sg/bench-late/<label>/<set> so a rerun only embeds what changed. Writes
bench/results/late_interaction.json. Codec figures: bench/codecs.py --model-path DIR; latency: bench/speed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._spec import BENCH, SPECS  # noqa: E402
from engine import load_settings, run_eval  # noqa: E402
from engine.embed.precision import cpu_flags  # noqa: E402

SHIP_SETS = ["cosqa", "repo-click", "repo-pytest", "clones"]


def run(label: str, model_path: str | None, spec: str, threads: int) -> dict:
    overrides: dict = {"models": {"threads": threads}}
    if model_path:
        overrides["models"]["model_path"] = model_path
    base = Path(os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg") / "bench-late"
    index_dir = base / label / spec
    row: dict = {"model": label, "spec": spec}
    for mode in ("semantic", "hybrid"):
        t0 = time.perf_counter()
        res = run_eval(BENCH / SPECS[spec], mode=mode, settings=load_settings(None, overrides), index_dir=index_dir)
        row[mode] = round(res.mrr_at_10, 4)
        row[f"{mode}_wall_s"] = round(time.perf_counter() - t0, 1)  # the first includes embedding the corpus
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-path", required=True, help="the late-interaction model (a PyLate directory)")
    ap.add_argument("--label", default="colbert", help="its name in the table and the cache")
    ap.add_argument("--specs", nargs="*", default=SHIP_SETS)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    rows = [run(label, path, spec, args.threads)
            for spec in args.specs for label, path in (("default", None), (args.label, args.model_path))]
    table = {(r["model"], r["spec"]): r for r in rows}
    print(f"\nCPU: {', '.join(cpu_flags())}\n{'set':12} {'default sem':>11} {'hybrid':>7}   "
          f"{args.label + ' sem':>11} {'hybrid':>7}   hybrid delta")
    for spec in args.specs:
        d, c = table["default", spec], table[args.label, spec]
        print(f"{spec:12} {d['semantic']:11.4f} {d['hybrid']:7.4f}   {c['semantic']:11.4f} {c['hybrid']:7.4f}   "
              f"{c['hybrid'] - d['hybrid']:+.4f}")
    verdict = None
    if set(SHIP_SETS) <= set(args.specs):
        deltas = [table[args.label, s]["hybrid"] - table["default", s]["hybrid"] for s in SHIP_SETS]
        mean = sum(deltas) / len(deltas)
        verdict = {"mean_hybrid_delta": round(mean, 4), "worst_set_delta": round(min(deltas), 4),
                   "ships": mean > 0 and min(deltas) >= -0.01}
        print(f"ship rule over {', '.join(SHIP_SETS)}: mean hybrid delta {mean:+.4f}, worst set "
              f"{min(deltas):+.4f} -> {'ship' if verdict['ships'] else 'do not ship'}")
    out = Path(__file__).resolve().parent / "results" / "late_interaction.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpu_flags": cpu_flags(), "model_path": args.model_path, "rows": rows,
                               "ship_rule": verdict}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
