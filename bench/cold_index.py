"""Full cold index time, embeddings included, of this tree against a baseline checkout, in one run.

    git worktree add /tmp/sg-base <rev>
    python bench/cold_index.py --baseline /tmp/sg-base [--repos fastapi,chi] [--work DIR]

Per repository of ../shared/bench/repo-search (unpacked as bench/repo_search.py does): a fresh `sg index ROOT
--index-dir D --json` process from each checkout, baseline and this tree alternating (the first of each pair
alternates too), each into a fresh index folder, default settings, this venv's python. Each side has a cache
folder of its own (SG_CACHE_DIR: ONNX and TorchScript exports), filled by one untimed run first, so neither pays
a one-off export nor sees the other's cache entries. What a user waits for
(`sg index --wait` or `sg search --wait` on a new folder): interpreter start, imports, walk, chunking, BM25, model
load and every embedding. Prints per repository and the medians with the CPU flags; writes
bench/results/cold_index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.repo_search import DATA, cpu_flags, unpack  # noqa: E402


def index_once(checkout: Path, root: Path, index_dir: Path, cache: Path) -> tuple[float, dict]:
    shutil.rmtree(index_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "engine.cli", "index", str(root), "--index-dir", str(index_dir), "--json"]
    env = {**os.environ, "PYTHONPATH": str(checkout), "SG_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=checkout, env=env)
    took = time.perf_counter() - t0
    shutil.rmtree(index_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: sg index {root} failed:\n{proc.stderr[-2000:]}")
    return took, json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="a checkout of the code to compare with (git worktree)")
    ap.add_argument("--repos", help="comma-separated names (default: every repository in the data folder)")
    ap.add_argument("--work", default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                          / "sg" / "repo-search"))
    ap.add_argument("--out", default=str(HERE / "results" / "cold_index.json"))
    args = ap.parse_args()
    base = Path(args.baseline).resolve()
    if not (base / "engine" / "cli.py").is_file():
        print(f"{base} is not a checkout of sg (no engine/cli.py)", file=sys.stderr)
        return 2
    repos = json.loads((DATA / "repos.json").read_text(encoding="utf-8"))
    if args.repos:
        repos = [r for r in repos if r["name"] in args.repos.split(",")]
    work = Path(args.work)
    flags = cpu_flags()
    print(f"# cold full index, {len(repos)} repositories, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"CPU flags: {flags}; baseline {base}", flush=True)
    checkouts = {"baseline": base, "this": ROOT}
    caches = {side: work / "cold-index" / f"{side}-cache" for side in checkouts}
    for side, checkout in checkouts.items():  # untimed: one-off exports into each side's cache
        index_once(checkout, unpack(repos[0], work), work / "cold-index" / side, caches[side])
    print(f"{'repository':<20} {'chunks':>7} {'embedded':>8} {'baseline s':>10} {'this s':>8} {'ratio':>6}")
    rows = []
    for i, repo in enumerate(repos):
        root = unpack(repo, work)
        times: dict[str, float] = {}
        report: dict = {}
        for side in (("baseline", "this") if i % 2 == 0 else ("this", "baseline")):
            took, rep = index_once(checkouts[side], root, work / "cold-index" / side, caches[side])
            times[side] = took
            if side == "this":
                report = rep
        row = {"repo": repo["name"], "chunks": report.get("chunks"), "embedded": report.get("embedded"), **times}
        rows.append(row)
        print(f"{repo['name']:<20} {row['chunks']:>7} {row['embedded']:>8} {times['baseline']:>10.1f} "
              f"{times['this']:>8.1f} {times['this'] / times['baseline']:>6.2f}", flush=True)
    med_b = statistics.median(r["baseline"] for r in rows)
    med_t = statistics.median(r["this"] for r in rows)
    summary = {"date": time.strftime("%Y-%m-%d"), "cpu_flags": flags, "command": " ".join(sys.argv),
               "baseline_median_s": med_b, "this_median_s": med_t, "ratio_of_medians": med_t / med_b,
               "baseline_mean_s": statistics.fmean(r["baseline"] for r in rows),
               "this_mean_s": statistics.fmean(r["this"] for r in rows), "repos": rows}
    print(f"\nmedian: baseline {med_b:.1f} s, this tree {med_t:.1f} s ({med_t / med_b:.2f}x); mean "
          f"{summary['baseline_mean_s']:.1f} s -> {summary['this_mean_s']:.1f} s  [CPU: {flags}]")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
