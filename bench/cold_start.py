"""One-shot `sg search` on an indexed store: the torch path against the ONNX Runtime path, in the same run.

    nice -n 10 .venv/bin/python bench/cold_start.py --corpus ../shared/bench/cosqa/corpus --index-dir D [--runs 10]

Both runtimes serve fp32 with the same model identity, so they search the same index D (built beforehand, e.g.
by `sg index`). Each gets a copy of the corpus (mtimes kept, so nothing looks changed) whose .sg.toml picks
its runtime. Runs alternate between the two; prints the median wall time of each, then where one run's time goes:
the top-level imports (python -X importtime) and the top functions by cumulative time (cProfile).
Writes bench/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.embed.precision import cpu_flags  # noqa: E402

MAIN = "import sys\nfrom engine.cli import main\nsys.exit(main())\n"
SG: list[str] = []  # set in main(): python <a script that runs sg's CLI> (cProfile needs a script, not -c)


def workspace(base: Path, corpus: Path, runtime: str) -> Path:
    ws = base / runtime
    if not ws.is_dir():
        shutil.copytree(corpus, ws, copy_function=shutil.copy2)  # copy2 keeps mtimes: an unchanged workspace
    (ws / ".sg.toml").write_text(f'[models]\nruntime = "{runtime}"\nprecision = "fp32"\n', encoding="utf-8")
    return ws


def run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, out


def imports(ws: Path, args, env: dict) -> list[tuple[str, float]]:
    _, out = run([sys.executable, "-X", "importtime"] + SG[1:] + ["search", args.query, str(ws), "--index-dir",
                                                                 args.index_dir, "--json"], env)
    tops = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cum, name = line.split("|")
            if not name.startswith("  ") and name.strip() and cum.strip().isdigit():
                tops.append((name.strip(), int(cum) / 1e6))
    return sorted(tops, key=lambda t: -t[1])[:12]


def profile(ws: Path, args, env: dict, dest: Path) -> list[tuple[str, float]]:
    run([sys.executable, "-m", "cProfile", "-o", str(dest)] + SG[1:] + ["search", args.query, str(ws),
                                                                        "--index-dir", args.index_dir, "--json"], env)
    stats = pstats.Stats(str(dest))
    rows = []
    for (file, line, fn), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "engine/" in file or "sg_lsp" in file:
            rows.append((f"{Path(file).parent.name}/{Path(file).name}:{fn}", cum))
    return sorted(rows, key=lambda r: -r[1])[:15]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--index-dir", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--query", default="read a json file and return a dict")
    ap.add_argument("--runtimes", nargs="*", default=["torch", "onnx"])
    ap.add_argument("--breakdown-only", action="store_true", help="skip the timed runs")
    args = ap.parse_args()
    corpus = Path(args.corpus).resolve()
    base = Path(tempfile.gettempdir()) / "sg-cold-start"
    base.mkdir(exist_ok=True)
    (base / "sg_main.py").write_text(MAIN, encoding="utf-8")
    SG[:] = [sys.executable, str(base / "sg_main.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    spaces = {rt: workspace(base, corpus, rt) for rt in args.runtimes}
    for rt, ws in ({} if args.breakdown_only else spaces).items():  # first run: settle the copy, exports, digests
        _, out = run(SG + ["search", args.query, str(ws), "--index-dir", args.index_dir, "--json"], env)
        if out.returncode != 0:
            sys.exit(f"{rt}: sg search failed: {out.stderr[-2000:]}")
        print(f"{rt}: first run done; notes: {out.stderr.strip()[-300:]}", flush=True)
    times: dict[str, list[float]] = {rt: [] for rt in spaces}
    for i in range(0 if args.breakdown_only else args.runs):
        for rt in (list(spaces) if i % 2 == 0 else list(spaces)[::-1]):
            s, out = run(SG + ["search", args.query, str(spaces[rt]), "--index-dir", args.index_dir, "--json"], env)
            assert out.returncode == 0, out.stderr[-2000:]
            times[rt].append(s)
    result = {"cpu_flags": list(cpu_flags()), "query": args.query, "runs": args.runs, "index_dir": args.index_dir,
              "median_s": {rt: round(statistics.median(t), 3) for rt, t in times.items() if t},
              "all_s": {rt: [round(x, 3) for x in t] for rt, t in times.items()}, "imports": {}, "profile": {}}
    print(f"CPU flags: {' '.join(cpu_flags())}; {args.runs} runs each, alternating")
    for rt, t in times.items():
        if not t:
            continue
        print(f"  {rt:6} median {statistics.median(t):.2f} s  (min {min(t):.2f}, max {max(t):.2f})")
    for rt, ws in spaces.items():
        result["imports"][rt] = [(n, round(s, 3)) for n, s in imports(ws, args, env)]
        result["profile"][rt] = [(n, round(s, 3)) for n, s in profile(ws, args, env, base / f"{rt}.prof")]
        print(f"\n{rt}: top-level imports (cumulative s): " +
              ", ".join(f"{n} {s:.2f}" for n, s in result["imports"][rt][:8]))
        print(f"{rt}: cProfile, engine functions by cumulative s:")
        for n, s in result["profile"][rt][:12]:
            print(f"    {s:7.3f}  {n}")
    res = ROOT / "bench" / "results"
    res.mkdir(exist_ok=True)
    (res / "cold_start.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
