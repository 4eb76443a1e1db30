"""One-shot `sg search` on an indexed folder, against `python -c "import torch"`, alternating in the same run.

    nice -n 10 .venv/bin/python bench/cold_start.py --corpus DIR --index-dir D [--runs 10] [--modes auto torch]

Modes: `auto` is sg's default settings (no .sg.toml: on a CPU with native bf16, documents in torch bf16 and
queries in ONNX Runtime fp32); `torch` is `models.runtime = "torch"` (what auto ran on such a CPU before: torch
bf16 for queries too; the same vectors, so the same index); `onnx` is `models.runtime = "onnx"` (fp32: another
vector space, so give it an index of its own with --onnx-index-dir). `import-torch` (always run) is the bare
import. The index D is built beforehand with the default settings (`sg index DIR --index-dir D`). Each mode gets a
copy of the corpus (mtimes kept, so nothing looks changed) whose .sg.toml picks its settings, and a copy of D.
Runs alternate between the modes; prints the median wall time of each with the CPU flags, whether auto meets the goal (median
<= 0.5 s and <= 0.3x import torch), then where one auto run's time goes: the top-level imports (python -X
importtime) and the engine functions by cumulative time (cProfile). Writes bench/results/cold_start.json.
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

from engine.embed.runtime.cpu import cpu_flags  # noqa: E402

MAIN = "import sys\nfrom engine.cli import main\nsys.exit(main())\n"
SG: list[str] = []  # set in main(): python <a script that runs sg's CLI> (cProfile needs a script, not -c)


GOAL_S, GOAL_RATIO = 0.5, 0.3
TOML = {"auto": "", "torch": '[models]\nruntime = "torch"\n', "onnx": '[models]\nruntime = "onnx"\n'}


def workspace(base: Path, corpus: Path, mode: str) -> Path:
    ws = base / mode
    if not ws.is_dir():
        shutil.copytree(corpus, ws, copy_function=shutil.copy2)  # copy2 keeps mtimes: an unchanged workspace
    toml = ws / ".sg.toml"
    if TOML[mode]:
        toml.write_text(TOML[mode], encoding="utf-8")
    else:
        toml.unlink(missing_ok=True)
    return ws


def run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, out


def index_copy(base: Path, mode: str, args) -> Path:
    """Each mode searches its own copy of the index: the workspaces differ by their .sg.toml, which is indexed,
    so a shared index would change (and its ANN be rebuilt) at every switch between modes."""
    src = Path(args.onnx_index_dir if mode == "onnx" else args.index_dir)
    dest = base / f"index-{mode}"
    if not dest.is_dir():
        shutil.copytree(src, dest, copy_function=shutil.copy2)
    return dest


def search_cmd(mode: str, ws: Path, args) -> list[str]:
    return ["search", args.query, str(ws), "--index-dir", str(ws.parent / f"index-{mode}"), "--json", "-k", "5"]


def imports(ws: Path, args, env: dict, mode: str) -> list[tuple[str, float]]:
    _, out = run([sys.executable, "-X", "importtime"] + SG[1:] + search_cmd(mode, ws, args), env)
    tops = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cum, name = line.split("|")
            if not name.startswith("  ") and name.strip() and cum.strip().isdigit():
                tops.append((name.strip(), int(cum) / 1e6))
    return sorted(tops, key=lambda t: -t[1])[:12]


def profile(ws: Path, args, env: dict, dest: Path, mode: str) -> list[tuple[str, float]]:
    run([sys.executable, "-m", "cProfile", "-o", str(dest)] + SG[1:] + search_cmd(mode, ws, args), env)
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
    ap.add_argument("--onnx-index-dir", default="", help="an index built with models.runtime = onnx (mode onnx)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--query", default="check if a variable is iterable")
    ap.add_argument("--modes", nargs="*", default=["auto", "torch"], choices=sorted(TOML))
    ap.add_argument("--breakdown", nargs="*", default=["auto"], help="modes to break down (imports, cProfile)")
    args = ap.parse_args()
    if "onnx" in args.modes and not args.onnx_index_dir:
        sys.exit("mode onnx needs --onnx-index-dir (fp32 vectors: another index)")
    corpus = Path(args.corpus).resolve()
    base = Path(tempfile.gettempdir()) / "sg-cold-start"
    base.mkdir(exist_ok=True)
    (base / "sg_main.py").write_text(MAIN, encoding="utf-8")
    SG[:] = [sys.executable, str(base / "sg_main.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flags = " ".join(cpu_flags())
    spaces = {mode: workspace(base, corpus, mode) for mode in args.modes}
    for mode in args.modes:
        index_copy(base, mode, args)
    cmds = {mode: SG + search_cmd(mode, ws, args) for mode, ws in spaces.items()}
    cmds["import-torch"] = [sys.executable, "-c", "import torch"]
    for mode, cmd in cmds.items():  # first run: settle the copy, exports, digests, the OS cache
        _, out = run(cmd, env)
        if out.returncode != 0:
            sys.exit(f"{mode}: failed: {out.stderr[-2000:]}")
        print(f"{mode}: first run done; notes: {out.stderr.strip()[-300:]}", flush=True)
    times: dict[str, list[float]] = {mode: [] for mode in cmds}
    for i in range(args.runs):
        for mode in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
            s, out = run(cmds[mode], env)
            assert out.returncode == 0, out.stderr[-2000:]
            times[mode].append(s)
    med = {mode: round(statistics.median(t), 3) for mode, t in times.items() if t}
    result = {"cpu_flags": flags, "query": args.query, "runs": args.runs, "index_dir": args.index_dir,
              "median_s": med, "all_s": {m: [round(x, 3) for x in t] for m, t in times.items()},
              "imports": {}, "profile": {}}
    print(f"{args.runs} runs each, alternating; CPU flags: {flags}")
    for mode, t in times.items():
        if t:
            ratio = f", {med[mode] / med['import-torch']:.2f}x import torch" if mode != "import-torch" else ""
            print(f"  {mode:12} median {med[mode]:.3f} s (min {min(t):.3f}, max {max(t):.3f}){ratio}  [CPU: {flags}]")
    if "auto" in med and med.get("import-torch"):
        ok = med["auto"] <= GOAL_S and med["auto"] <= GOAL_RATIO * med["import-torch"]
        result["goal"] = {"median_s": GOAL_S, "ratio_to_import_torch": GOAL_RATIO, "met": ok}
        print(f"  goal (auto median <= {GOAL_S} s and <= {GOAL_RATIO}x import torch): {'met' if ok else 'NOT met'}"
              f"  [CPU: {flags}]")
    for mode in [m for m in args.breakdown if m in spaces]:
        ws = spaces[mode]
        result["imports"][mode] = [(n, round(s, 3)) for n, s in imports(ws, args, env, mode)]
        result["profile"][mode] = [(n, round(s, 3)) for n, s in profile(ws, args, env, base / f"{mode}.prof", mode)]
        print(f"\n{mode}: top-level imports (cumulative s): " +
              ", ".join(f"{n} {s:.3f}" for n, s in result["imports"][mode][:8]))
        print(f"{mode}: cProfile, engine functions by cumulative s:")
        for n, s in result["profile"][mode][:12]:
            print(f"    {s:7.3f}  {n}")
    res = ROOT / "bench" / "results"
    res.mkdir(exist_ok=True)
    (res / "cold_start.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
