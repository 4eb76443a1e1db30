"""Repository search bench: the public Semble code-search benchmark's queries on the repositories in
../shared/bench/repo-search, scored by NDCG@10 exactly as that benchmark scores itself (its run_benchmark.py).

    python bench/repo_search.py [--repos fastapi,chi] [--modes hybrid,semantic,lexical] [--no-models]
                                [--semble .venv-semble/bin/python] [--first-result] [--keep] [--misses N]
                                [--set search.KEY=JSON] [--out FILE] [--markdown FILE]

Per repository, a fresh Engine over a fresh index (cold; `--keep` reuses the index, for ranking work only):
- the lexical pass (walk, chunk, BM25) and the time to the first result, which comes from the lexical tier;
- the embeddings (model load included), then every query in each mode; the hybrid queries run a second time warm
  for the p50;
- `--first-result` also times a fresh `sg search` process on the unindexed repository (lexical pass + first query).

Scoring (benchmarks/run_benchmark.py of MinishLab/semble): per target in relevant + secondary, the 1-based rank of
the first top-10 hit that covers it (paths equal, or one ends with "/" + the other; the spans overlap when the
target has one); NDCG@10 with binary gains against an ideal of min(10, n), n = the targets some indexed chunk covers;
a repository's score is the mean over its queries, the headline the mean over repositories. Hit paths are relative
to the indexed folder (the benchmark root), as the benchmark's own runs report them; `strict` joins the benchmark
root to the hit path and needs the path to be equal.

`--semble PY` runs the peer in the same run: `semble==0.7.0` in a venv of its own (PY is that venv's python; make it
with `python3 -m venv .venv-semble && .venv-semble/bin/pip install semble==0.7.0`), BM25 with its ranking, a
placeholder model and alpha=0 (bench/semble_baseline.py). Results go to bench/results/repo_search.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench._spec import BENCH  # noqa: E402

DATA = BENCH / "repo-search"
CATEGORIES = ("architecture", "semantic", "symbol")


# -- the benchmark's scoring -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    path: str
    start: int | None = None
    end: int | None = None


@dataclass
class Task:
    query: str
    targets: list[Target]
    category: str


def path_matches(hit: str, target: str) -> bool:
    return hit == target or hit.endswith("/" + target) or target.endswith("/" + hit)


def covers(path: str, start: int, end: int, t: Target, prefix: str | None = None) -> bool:
    """Whether a hit covers a target: the suffix rule (prefix None), or strict (benchmark root + hit path)."""
    if prefix is None:
        if not path_matches(path, t.path):
            return False
    elif (f"{prefix}/{path}" if prefix else path) != t.path:
        return False
    return t.start is None or t.end is None or not (end < t.start or start > t.end)


def ndcg10(hits: list[tuple[str, int, int]], task: Task, chunks: list[tuple[str, int, int]],
           prefix: str | None = None, covered: int | None = None) -> float:
    ranks = []
    for t in task.targets:
        r = next((i for i, (p, s, e) in enumerate(hits[:10], 1) if covers(p, s, e, t, prefix)), None)
        if r is not None:
            ranks.append(r)
    n = covered if covered is not None else n_covered(task, chunks, prefix)
    if n == 0:
        return 0.0
    rel = [0] * 10
    for r in ranks:
        rel[r - 1] = 1
    dcg = sum(x / math.log2(i + 2) for i, x in enumerate(rel))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, n)))
    return dcg / ideal


def n_covered(task: Task, chunks: list[tuple[str, int, int]], prefix: str | None = None) -> int:
    """The benchmark's ideal count: how many of the task's targets some indexed chunk covers."""
    return sum(1 for t in task.targets if any(covers(p, s, e, t, prefix) for p, s, e in chunks))


def load_tasks(name: str) -> list[Task]:
    raw = json.loads((DATA / "annotations" / f"{name}.json").read_text(encoding="utf-8"))
    out = []
    for item in raw:
        targets = []
        for t in [*item.get("relevant", []), *item.get("secondary", [])]:
            targets.append(Target(t) if isinstance(t, str) else
                           Target(str(t["path"]), t.get("start_line"), t.get("end_line")))
        out.append(Task(item["query"], targets, item.get("category") or "semantic"))
    return out


def unpack(repo: dict, work: Path) -> Path:
    """The repository's benchmark root, unpacked once under `work`."""
    dest = work / "repos"
    top = dest / repo["name"]
    if not top.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(DATA / "repos" / f"{repo['name']}.tar.gz") as tf:
            tf.extractall(dest, filter="data")
    return top / (repo.get("benchmark_root") or "")


# -- one repository ---------------------------------------------------------------------------------------------------
@dataclass
class RepoRun:
    name: str
    language: str
    chunks: int = 0
    lexical_s: float = 0.0
    first_result_s: float = 0.0
    embed_s: float = 0.0
    embedded: int = 0
    cold_cli_s: float | None = None
    p50_ms: float = 0.0
    ndcg: dict[str, float] = field(default_factory=dict)  # mode -> mean NDCG@10
    strict: dict[str, float] = field(default_factory=dict)
    by_cat: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # mode -> category -> scores
    misses: list[str] = field(default_factory=list)


def run_repo(repo: dict, root: Path, work: Path, args: argparse.Namespace) -> RepoRun:
    from engine import Engine, load_settings

    tasks = load_tasks(repo["name"])
    out = RepoRun(repo["name"], repo["language"])
    index_dir = work / "index" / repo["name"]
    if not args.keep:
        shutil.rmtree(index_dir, ignore_errors=True)
    if args.first_result:
        out.cold_cli_s = cold_cli(root, work / "index-cli" / repo["name"], tasks[0].query, args.no_models)
    overrides: dict = {"index": {"index_dir": str(index_dir)}}
    if args.no_models:
        overrides["models"] = {"enabled": False}
    for item in args.set:
        key, _, value = item.partition("=")
        table, _, name = key.partition(".")
        overrides.setdefault(table, {})[name] = json.loads(value)
    eng = Engine(root, load_settings(root, overrides, lenient=True))
    try:
        t0 = time.perf_counter()
        eng.index(embed=False)
        out.lexical_s = time.perf_counter() - t0
        eng.search(tasks[0].query, k=10, mode="hybrid", wait_for_models=False)
        out.first_result_s = time.perf_counter() - t0
        if not args.no_models:
            t1 = time.perf_counter()
            rep = eng.index()
            out.embed_s, out.embedded = time.perf_counter() - t1, rep.embedded
        eng.warm(wait=True)
        chunks = [(c.path, c.start_line, c.end_line) for c in eng.iter_chunks()]
        out.chunks = len(chunks)
        prefix = repo.get("benchmark_root") or ""
        covered = [n_covered(t, chunks) for t in tasks]
        covered_strict = [n_covered(t, chunks, prefix) for t in tasks]
        modes = ["lexical"] if args.no_models else args.modes
        for mode in modes:
            scores, strict = [], []
            cats: dict[str, list[float]] = {}
            for i, t in enumerate(tasks):
                res = eng.search(t.query, k=10, mode=mode, explain=False)
                hits = [(h.path, h.start_line, h.end_line) for h in res.hits]
                s = ndcg10(hits, t, chunks, covered=covered[i])
                scores.append(s)
                strict.append(ndcg10(hits, t, chunks, prefix, covered=covered_strict[i]))
                cats.setdefault(t.category, []).append(s)
                if mode == modes[0] and s < 1.0 and len(out.misses) < args.misses:
                    out.misses.append(f"  [{t.category}] {s:.2f} {t.query!r}\n      want "
                                      + ", ".join(f"{x.path}:{x.start}-{x.end}" if x.start else x.path
                                                  for x in t.targets[:3])
                                      + "\n      got  " + ", ".join(f"{p}:{a}-{b}" for p, a, b in hits[:5]))
            out.ndcg[mode] = statistics.fmean(scores)
            out.strict[mode] = statistics.fmean(strict)
            out.by_cat[mode] = cats
        warm_mode = "lexical" if args.no_models else "hybrid"
        times = []
        for t in tasks:
            t1 = time.perf_counter()
            eng.search(t.query, k=10, mode=warm_mode)
            times.append((time.perf_counter() - t1) * 1000)
        out.p50_ms = statistics.median(times)
    finally:
        eng.close()
    return out


def cold_cli(root: Path, index_dir: Path, query: str, no_models: bool) -> float:
    """Seconds for a fresh `sg search` process on an unindexed folder to print its first answer (default settings:
    the lexical tier answers while the embeddings wait; --no-background so that no indexer outlives the bench)."""
    shutil.rmtree(index_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "engine.cli", "search", query, str(root), "--index-dir", str(index_dir),
           "-k", "10", "--json", "--no-background"] + (["--no-models"] if no_models else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    took = time.perf_counter() - t0
    shutil.rmtree(index_dir, ignore_errors=True)
    return took


def run_semble(python: str, repos: list[dict], roots: dict[str, Path], work: Path) -> dict[str, dict]:
    cache = work / "semble-cache"
    shutil.rmtree(cache, ignore_errors=True)
    job = {"cache": str(cache), "repos": [{"name": r["name"], "root": str(roots[r["name"]]),
                                           "queries": [t.query for t in load_tasks(r["name"])]} for r in repos]}
    proc = subprocess.run([python, str(HERE / "semble_baseline.py")], input=json.dumps(job), text=True,
                          capture_output=True, check=True, env={**os.environ, "PYTHONPATH": ""})
    out = {}
    for line in proc.stdout.splitlines():
        d = json.loads(line)
        tasks = load_tasks(d["name"])
        chunks = [tuple(c) for c in d["chunks"]]
        scores = [ndcg10([tuple(h) for h in hits], t, chunks) for hits, t in zip(d["hits"], tasks)]
        cats: dict[str, list[float]] = {}
        for s, t in zip(scores, tasks):
            cats.setdefault(t.category, []).append(s)
        out[d["name"]] = {"ndcg": statistics.fmean(scores), "index_s": d["index_s"],
                          "p50_ms": statistics.median(d["query_ms"]), "by_cat": cats, "chunks": len(chunks)}
    return out


# -- report -----------------------------------------------------------------------------------------------------------
def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags)


def cat_means(by_cat: list[dict[str, list[float]]]) -> dict[str, float]:
    """Per category: the mean over repositories of each repository's mean in that category."""
    out = {}
    for c in CATEGORIES:
        vals = [statistics.fmean(d[c]) for d in by_cat if d.get(c)]
        out[c] = statistics.fmean(vals) if vals else float("nan")
    return out


def markdown(runs: list[RepoRun], modes: list[str], peer: dict[str, dict]) -> str:
    """One row per repository: NDCG@10 per mode and the peer's, and the times."""
    head = ["repository", "language", "chunks", *[f"sg {m}" for m in modes]] + (["semble"] if peer else []) + \
        ["lexical pass s", "first result s", "fresh `sg search` s", "embed s", "warm p50 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [r.name, r.language, str(r.chunks), *[f"{r.ndcg[m]:.3f}" for m in modes]]
        if peer:
            cells.append(f"{peer[r.name]['ndcg']:.3f}" if r.name in peer else "-")
        cells += [f"{r.lexical_s:.2f}", f"{r.first_result_s:.2f}",
                  f"{r.cold_cli_s:.2f}" if r.cold_cli_s is not None else "-", f"{r.embed_s:.1f}", f"{r.p50_ms:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repos", help="comma-separated names (default: every repository in the data folder)")
    ap.add_argument("--modes", default="hybrid,semantic,lexical")
    ap.add_argument("--no-models", action="store_true", help="lexical tier only (models off)")
    ap.add_argument("--semble", metavar="PY", help="python of a venv with semble==0.7.0: run the peer too")
    ap.add_argument("--first-result", action="store_true", help="also time a fresh `sg search` process per repo")
    ap.add_argument("--keep", action="store_true", help="reuse existing indexes (ranking work; times not cold)")
    ap.add_argument("--misses", type=int, default=0, help="print up to N imperfect queries per repository")
    ap.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=JSON",
                    help="a setting for every engine, e.g. search.lexical_weight=0.3 (repeatable)")
    ap.add_argument("--work", default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                          / "sg" / "repo-search"))
    ap.add_argument("--out", default=str(HERE / "results" / "repo_search.json"))
    ap.add_argument("--markdown", metavar="FILE", help="also write the per-repository table as Markdown")
    args = ap.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    if not DATA.is_dir():
        print(f"no benchmark data at {DATA}", file=sys.stderr)
        return 2
    repos = json.loads((DATA / "repos.json").read_text(encoding="utf-8"))
    if args.repos:
        wanted = args.repos.split(",")
        unknown = set(wanted) - {r["name"] for r in repos}
        if unknown:
            print(f"unknown repositories: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        repos = [r for r in repos if r["name"] in wanted]
    work = Path(args.work)
    roots = {r["name"]: unpack(r, work) for r in repos}
    flags = cpu_flags()
    print(f"# repo-search, {len(repos)} repositories, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"CPU flags: {flags}")
    peer = {}
    if args.semble:
        t0 = time.perf_counter()
        peer = run_semble(args.semble, repos, roots, work)
        print(f"semble 0.7.0 BM25 + ranking: {statistics.fmean(p['ndcg'] for p in peer.values()):.3f} "
              f"({time.perf_counter() - t0:.0f} s)")
    runs: list[RepoRun] = []
    modes = ["lexical"] if args.no_models else args.modes
    hdr = " ".join(f"{m[:8]:>8}" for m in modes)
    print(f"{'repository':<20} {'lang':<11} {'chunks':>6} {hdr} {'semble':>7} {'lex s':>6} {'first s':>7} "
          f"{'embed s':>7} {'p50 ms':>7}")
    for r in repos:
        run = run_repo(r, roots[r["name"]], work, args)
        runs.append(run)
        p = peer.get(r["name"], {}).get("ndcg")
        print(f"{run.name:<20} {run.language:<11} {run.chunks:>6} "
              + " ".join(f"{run.ndcg[m]:>8.3f}" for m in modes)
              + f" {p if p is not None else float('nan'):>7.3f} {run.lexical_s:>6.2f} {run.first_result_s:>7.2f} "
              f"{run.embed_s:>7.1f} {run.p50_ms:>7.1f}", flush=True)
        for line in run.misses:
            print(line)
    summary: dict = {"date": time.strftime("%Y-%m-%d"), "cpu_flags": flags, "repos": len(runs),
                     "command": " ".join(sys.argv)}
    print()
    for m in modes:
        cats = cat_means([x.by_cat[m] for x in runs])
        mean = statistics.fmean(x.ndcg[m] for x in runs)
        strict = statistics.fmean(x.strict[m] for x in runs)
        summary[m] = {"ndcg10": mean, "strict": strict, **cats}
        print(f"sg {m:<9} NDCG@10 {mean:.3f} (strict {strict:.3f})  "
              + "  ".join(f"{c} {v:.3f}" for c, v in cats.items()))
    if peer:
        cats = cat_means([p["by_cat"] for p in peer.values()])
        summary["semble"] = {"ndcg10": statistics.fmean(p["ndcg"] for p in peer.values()), **cats,
                             "index_s_mean": statistics.fmean(p["index_s"] for p in peer.values()),
                             "index_s_median": statistics.median(p["index_s"] for p in peer.values()),
                             "p50_ms_median": statistics.median(p["p50_ms"] for p in peer.values())}
        s = summary["semble"]
        print(f"semble    NDCG@10 {s['ndcg10']:.3f}  " + "  ".join(f"{c} {s[c]:.3f}" for c in CATEGORIES)
              + f"  index mean {s['index_s_mean']:.2f} s, median {s['index_s_median']:.2f} s; p50 "
              f"{s['p50_ms_median']:.2f} ms")
    full = [x.lexical_s + x.embed_s for x in runs]
    summary["time"] = {"lexical_s_median": statistics.median(x.lexical_s for x in runs),
                       "first_result_s_median": statistics.median(x.first_result_s for x in runs),
                       "full_index_s_median": statistics.median(full), "full_index_s_mean": statistics.fmean(full),
                       "p50_ms_median": statistics.median(x.p50_ms for x in runs),
                       "embedded_chunks": sum(x.embedded for x in runs),
                       "embed_s": sum(x.embed_s for x in runs)}
    if any(x.cold_cli_s is not None for x in runs):
        summary["time"]["cold_cli_s_median"] = statistics.median(x.cold_cli_s for x in runs if x.cold_cli_s)
    t = summary["time"]
    print(f"time: lexical pass median {t['lexical_s_median']:.2f} s; first result median "
          f"{t['first_result_s_median']:.2f} s" + (f" (fresh sg search process {t['cold_cli_s_median']:.2f} s)"
                                                    if "cold_cli_s_median" in t else "")
          + f"; full index median {t['full_index_s_median']:.1f} s, mean {t['full_index_s_mean']:.1f} s; "
          f"warm p50 median {t['p50_ms_median']:.1f} ms; {t['embedded_chunks']} chunks embedded in "
          f"{t['embed_s']:.0f} s")
    if args.markdown:
        Path(args.markdown).write_text(markdown(runs, modes, peer), encoding="utf-8")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "repos": [x.__dict__ for x in runs],
                                          "semble": peer}, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
