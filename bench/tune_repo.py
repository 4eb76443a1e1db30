"""Local tuning end to end on the repo-* sets: index + eval with the base model, tune on the corpus, eval the tuned model.

    .venv/bin/python bench/tune_repo.py                       # repo-pytest and repo-click, default config
    .venv/bin/python bench/tune_repo.py --spec ../shared/bench/repo-pytest/dev.json --config local_default

The corpora stay read-only: indexes and the tuned model go to a work directory (a temp dir unless --work).
Tuning sees only the corpus (its code and the docstrings that remain); the eval queries are read by the
evaluation alone, plus a leak check that counts how many of them appear verbatim among the mined queries.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._spec import BENCH  # noqa: E402
from engine.eval import load_spec, run_eval  # noqa: E402
from engine.search import Engine  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.tune import run_tune  # noqa: E402
from engine.tune.mine import read_jsonl  # noqa: E402

DEFAULT_SPECS = [BENCH / "repo-pytest" / "dev.json", BENCH / "repo-click" / "dev.json"]


def _progress(quiet: bool):
    state = {"phase": None, "t": time.perf_counter()}

    def cb(phase: str, done: int, total: int) -> None:
        if quiet:
            return
        now = time.perf_counter()
        if phase != state["phase"] or done == total or now - state["t"] > 15:
            print(f"    {phase}: {done}/{total}", file=sys.stderr, flush=True)
            state["phase"], state["t"] = phase, now

    return cb


def run_one(spec_path: Path, work: Path, config: str | None, mode: str, quiet: bool) -> dict:
    spec = load_spec(spec_path)
    name = spec_path.parent.name
    index_dir = work / f"{name}-index"
    out_dir = work / f"{name}-tuned"
    cb = _progress(quiet)
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    print(f"[{name}] index + eval with the base model ({len(spec.queries)} queries, mode {mode})", file=sys.stderr)
    t = time.perf_counter()
    base_settings = load_settings(None, {"index": {"index_dir": str(index_dir)}})
    before = run_eval(spec_path, mode=mode, settings=base_settings, progress=cb)
    times["index+eval base"] = time.perf_counter() - t

    print(f"[{name}] tune on the corpus", file=sys.stderr)
    t = time.perf_counter()
    engine = Engine(spec.corpus, load_settings(None, {"index": {"index_dir": str(index_dir)}}))
    try:
        rep = run_tune(engine, config_path=config, out_dir=str(out_dir), progress=cb)
    finally:
        engine.close()
    times["tune"] = time.perf_counter() - t

    print(f"[{name}] index + eval with the tuned model {out_dir}", file=sys.stderr)
    t = time.perf_counter()
    tuned_settings = load_settings(None, {"index": {"index_dir": str(index_dir)},
                                          "models": {"model_path": str(out_dir)}})
    after = run_eval(spec_path, mode=mode, settings=tuned_settings, progress=cb)
    times["index+eval tuned"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t_all

    mined = {" ".join(p.query.lower().split()) for p in read_jsonl(rep.pairs_path)}
    leaks = sum(" ".join(q.query.lower().split()) in mined for q in spec.queries)
    return {"set": name, "queries": len(spec.queries), "mode": mode,
            "before": before.as_dict(), "after": after.as_dict(),
            "pairs": rep.pairs, "train_pairs": rep.train_pairs, "heldout_pairs": rep.heldout_pairs,
            "pair_kinds": rep.pair_kinds, "steps": rep.steps, "stopped": rep.stopped,
            "heldout_before": rep.before, "heldout_after": rep.after, "tune_timings": rep.timings,
            "loss_first": rep.loss_first, "loss_last": rep.loss_last,
            "times": {k: round(v, 1) for k, v in times.items()}, "leaked_eval_queries": leaks,
            "model": str(out_dir), "notes": rep.notes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", action="append", help="eval spec (repeatable; default repo-pytest and repo-click)")
    ap.add_argument("--config", default=None, help="training config (default configs/train_local_default.yaml)")
    ap.add_argument("--mode", default="hybrid", choices=["hybrid", "semantic", "lexical"])
    ap.add_argument("--work", help="work directory for indexes and models (default: a temp dir)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    specs = [Path(s) for s in args.spec] if args.spec else DEFAULT_SPECS
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sg-tune-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = [run_one(s, work, args.config, args.mode, args.quiet) for s in specs]
    print(f"\n{'set':<12} {'P@1 base':>8} {'P@1 tuned':>9} {'rel':>7} {'MRR base':>8} {'MRR tuned':>9} "
          f"{'pairs':>6} {'steps':>5} {'minutes':>7}")
    for r in results:
        b, a = r["before"], r["after"]
        rel = (a["P@1"] - b["P@1"]) / b["P@1"] * 100 if b["P@1"] else float("nan")
        print(f"{r['set']:<12} {b['P@1']:>8.3f} {a['P@1']:>9.3f} {rel:>+6.1f}% {b['MRR@10']:>8.3f} "
              f"{a['MRR@10']:>9.3f} {r['pairs']:>6} {r['steps']:>5} {r['times']['total'] / 60:>7.1f}")
    for r in results:
        print(f"\n{r['set']}: {json.dumps({k: r[k] for k in ('pair_kinds', 'heldout_pairs', 'heldout_before', 'heldout_after', 'stopped', 'times', 'tune_timings', 'leaked_eval_queries')})}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
