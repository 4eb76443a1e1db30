"""Before/after for sg's shipped MiniLM adapter: the same eval specs with models.default_adapter false and true.

    .venv/bin/python bench/default_adapter.py [--variant plain|adapter|both] [--mode hybrid] SPEC.json ...

Each variant indexes into its own directory (the model identity differs, so the vectors must not mix), kept in
~/.cache/sg/bench-default-adapter/ so a rerun only embeds what changed. Results: bench/results/default_adapter.json
(merged with earlier runs, one entry per spec, mode and variant). The shipped adapter is made by
`python -m tools.public_recipe configs/train_public_code.yaml`; docs/models.md has the figures of both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._spec import BENCH  # noqa: E402
from engine import Engine, load_settings  # noqa: E402
from engine.embed.registry import load_embedders  # noqa: E402
from engine.eval import run_eval  # noqa: E402

DEFAULT_SPECS = ["repo-click/dev.json", "repo-pytest/dev.json", "clones/dev.json", "cosqa/dev.json"]
OUT = Path(__file__).resolve().parent / "results" / "default_adapter.json"


def run(spec: Path, variant: str, mode: str, threads: int, adapter: Path | None = None) -> dict:
    overrides = {"models": {"default_adapter": variant == "adapter", "threads": threads}}
    settings = load_settings(None, overrides)
    base = Path(os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg") / "bench-default-adapter"
    index_dir = base / variant / f"{spec.parent.name}-{spec.stem}"

    def engine(root, st):  # the adapter under test instead of the shipped one
        return Engine(root, st, embedders=load_embedders(st.models, adapter_dir=adapter))

    t0 = time.perf_counter()
    res = run_eval(spec, mode=mode, settings=settings, index_dir=index_dir,
                   engine_factory=engine if adapter is not None and variant == "adapter" else None)
    out = res.as_dict() | {"variant": variant, "spec": str(spec), "wall_seconds": round(time.perf_counter() - t0, 1),
                            "adapter": str(adapter or "shipped") if variant == "adapter" else ""}
    print(json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*", help=f"eval specs (default: {', '.join(DEFAULT_SPECS)} under {BENCH})")
    ap.add_argument("--variant", choices=("plain", "adapter", "both"), default="both")
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--adapter", type=Path, help="an adapter dir to test instead of engine/embed/adapters/minilm-code")
    args = ap.parse_args(argv)
    specs = [Path(s) for s in args.specs] or [BENCH / s for s in DEFAULT_SPECS]
    variants = ("plain", "adapter") if args.variant == "both" else (args.variant,)
    for spec in specs:
        for variant in variants:
            r = run(spec.resolve(), variant, args.mode, args.threads, args.adapter)
            # re-read just before writing: several runs (one per variant) may share the file
            results = json.loads(OUT.read_text()) if OUT.is_file() else {}
            results[f"{r['name']}|{args.mode}|{variant}"] = r
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    print(f"{'spec':<14} {'mode':<8} {'variant':<8} {'P@1':>6} {'MRR@10':>7} {'R@10':>6}")
    for key in sorted(results):
        r = results[key]
        print(f"{r['name']:<14} {r['mode']:<8} {r['variant']:<8} {r['P@1']:>6.3f} {r['MRR@10']:>7.3f} {r['R@10']:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
