"""SIGKILL `sg index` (lexical) N times (default 50) at random moments on a ~2,000-file copy of the CoSQA corpus;
after every kill the index must open and pass Engine.check(); after a final resume, results must equal a clean
build. With --server-kills M, also SIGKILL `sg-lsp` M times during didSave storms. Prints figures, writes JSON."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rellib import LEXICAL, QUERIES, REPO, copy_corpus, marker, save_storm_then_kill  # noqa: E402

sys.path.insert(0, str(REPO))
from engine.search import Engine  # noqa: E402
from engine.settings import load_settings  # noqa: E402


def engine(root: Path, index_dir: Path) -> Engine:
    return Engine(root, load_settings(root, {"index": {"index_dir": str(index_dir)}, "models": {"enabled": False}}))


def check(root: Path, index_dir: Path) -> list[str]:
    """The index's integrity problems (empty when it opens clean)."""
    eng = engine(root, index_dir)
    try:
        return eng.check()
    finally:
        eng.close()


def sg_index(root: Path, index_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "index", str(root), "--index-dir", str(index_dir),
                             "-q", "--no-models"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def results(root: Path, index_dir: Path, queries: list[str]) -> tuple[list, int, list[str]]:
    eng = engine(root, index_dir)
    try:
        return ([[(h.path, h.symbol, h.start_line) for h in eng.search(q, k=10, mode="lexical").hits] for q in queries],
                eng.status()["chunks"], eng.check())
    finally:
        eng.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--server-kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bench", default=str(REPO.parent / "shared" / "bench"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "reliability_kill_index.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="sg-kill-"))
    root = copy_corpus(Path(args.bench), base / "ws", args.files)
    t0 = time.time()
    p = sg_index(root, base / "clean")
    assert p.wait(1200) == 0, p.stderr.read().decode()
    clean_seconds = time.time() - t0

    kills = survived = 0
    problems: list[str] = []
    crashed = base / "crashed"
    names = sorted(f.name for f in root.iterdir())
    for n in range(args.kills):
        if n % 10 == 0:  # every 10 runs the index starts over; in between, 10% of the files change each time
            subprocess.run(["rm", "-rf", str(crashed)], check=True)
        else:
            for name in rng.sample(names, len(names) // 10):
                with open(root / name, "a", encoding="utf-8") as fh:
                    fh.write(f"\n\ndef edited_{n}():\n    return '{marker(n, 1)}'\n")
        p = sg_index(root, crashed)
        time.sleep(rng.uniform(0.3, max(0.6, clean_seconds * (1.2 if n % 10 == 0 else 0.5))))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait(60)
        found = check(root, crashed)
        if found:
            problems.append(f"kill {n}: {found}")
        else:
            survived += 1
        if n % 10 == 9:
            print(f"{n + 1} runs, {kills} kills, {len(problems)} problems", flush=True)
    p = sg_index(root, crashed)
    assert p.wait(1200) == 0, p.stderr.read().decode()
    p = sg_index(root, base / "clean-final")
    assert p.wait(1200) == 0, p.stderr.read().decode()
    queries = QUERIES + [marker(n, 1) for n in range(1, args.kills)]
    expected, chunks_clean, _ = results(root, base / "clean-final", queries)
    got, chunks_resumed, final_check = results(root, crashed, queries)
    resumed_equal = got == expected and chunks_resumed == chunks_clean

    # The language server, killed during on-save re-indexing.
    server_kills = server_problems = 0
    srv_idx = base / "server-idx"
    for r in range(args.server_kills):
        save_storm_then_kill(root, names, {**LEXICAL, "index": {"index_dir": str(srv_idx)}}, rng,
                             rng.uniform(0.5, 6.0), r)
        server_kills += 1
        found = check(root, srv_idx)
        if found:
            server_problems += 1
            problems.append(f"server kill {r}: {found}")
    server_equal = None
    if args.server_kills:
        eng, clean = engine(root, srv_idx), engine(root, base / "clean2")
        try:
            eng.index()
            clean.index()
            qs = QUERIES + [marker(r, 0) for r in range(args.server_kills)]
            server_equal = ([[(h.path, h.symbol) for h in eng.search(q, k=10, mode="lexical").hits] for q in qs] ==
                            [[(h.path, h.symbol) for h in clean.search(q, k=10, mode="lexical").hits] for q in qs]
                            and eng.status()["chunks"] == clean.status()["chunks"] and eng.check() == [])
        finally:
            eng.close()
            clean.close()
    out = {"files": args.files, "runs": args.kills, "kills": kills, "survived": survived,
           "problems_found": problems, "clean_build_seconds": round(clean_seconds, 1),
           "resumed_equals_clean": resumed_equal, "final_check": final_check, "chunks": chunks_clean,
           "server_kills": server_kills, "server_problems": server_problems,
           "server_resumed_equals_clean": server_equal, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0 if resumed_equal and not problems and server_equal in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main())
