"""Bad inputs on disk at full size: every bad-file kind from tests/test_reliability.py plus N files deleted,
re-created and rewritten by a thread while the engine indexes. Counts inputs tried, outcomes, leaks, losses."""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
from rellib import REPO, marker  # noqa: E402
from tests.support.workspaces import SECRET, bad_workspace, lexical_engine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--churn-files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "reliability_bad_inputs.json"))
    args = ap.parse_args()
    t0 = time.time()
    base = Path(tempfile.mkdtemp(prefix="sg-bad-"))
    root, outside, exp = bad_workspace(base)
    n = args.churn_files
    (root / "churn").mkdir()
    for i in range(n):
        (root / "churn" / f"f{i}.py").write_text(f"def func_{i}():\n    return '{marker(i, 0)}'\n")
    stop = threading.Event()
    rng = random.Random(1)
    churn_ops = [0]

    def churn() -> None:
        v = 1
        while not stop.is_set():
            i = rng.randrange(n)
            p = root / "churn" / f"f{i}.py"
            r = rng.random()
            if r < 0.3:
                p.unlink(missing_ok=True)
            elif r < 0.6:
                p.write_text(f"def func_{i}():\n    return '{marker(i, v)}'\n" * rng.randrange(1, 4))
            else:
                with open(p, "w") as fh:
                    fh.write("def partial(")
                    fh.flush()
                    fh.write(f"):\n    return '{marker(i, v)}'\n")
            v += 1
            churn_ops[0] += 1

    problems: list[str] = []
    eng = lexical_engine(root, base / "idx")
    try:
        t = threading.Thread(target=churn)
        t.start()
        try:
            for _ in range(args.rounds):
                eng.index()
                found = eng.check()
                if found:
                    problems.append(f"check during churn: {found}")
        finally:
            stop.set()
            t.join()
        eng.index()
        chunks = list(eng.iter_chunks())
        skips = {s.path: s for s in eng.skipped()}
        indexed = {c.path for c in chunks}
        outcomes = {}
        for rel, want in exp.items():
            got = "indexed" if rel in indexed else (skips[rel].reason if rel in skips else "absent")
            outcomes[rel] = got
            if want != "any" and got != want:
                problems.append(f"{rel!r}: expected {want}, got {got}")
        leaks = sum(SECRET in c.text for c in chunks)
        clean = lexical_engine(root, base / "clean")
        try:
            clean.index()
            qs = [marker(i, v) for i in range(0, n, 97) for v in range(0, 200, 37)]
            same = ([[(h.path, h.start_line) for h in eng.search(q, k=10, mode="lexical").hits] for q in qs] ==
                    [[(h.path, h.start_line) for h in clean.search(q, k=10, mode="lexical").hits] for q in qs]
                    and eng.status()["chunks"] == clean.status()["chunks"])
        finally:
            clean.close()
        on_disk = {f"churn/{p.name}" for p in (root / "churn").iterdir()}
        lost = sorted(on_disk - indexed)
    finally:
        eng.close()
    out = {"bad_inputs_tried": len(exp), "outcomes": outcomes, "churn_files": n, "churn_operations": churn_ops[0],
           "index_rounds_during_churn": args.rounds, "secret_leaks": leaks, "final_equals_clean": same,
           "lost_files": lost[:20], "lost_count": len(lost), "problems": problems,
           "seconds": round(time.time() - t0, 1)}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0 if not problems and not leaks and same and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
