"""1,000 interleaved didSave / didChangeWatchedFiles / delete events and sg/search requests against the real
server: every answer consistent with some committed state, no lost updates afterwards. Prints figures, JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rellib import LEXICAL, REPO, Raw, storm, storm_workspace  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "reliability_storm.json"))
    args = ap.parse_args()
    runs = []
    for seed in range(args.runs):
        base = Path(tempfile.mkdtemp(prefix="sg-storm-"))
        root = base / "ws"
        storm_workspace(root, args.files)
        srv = Raw()
        t0 = time.time()
        try:
            srv.initialize(root, {**LEXICAL, "index": {"index_dir": str(base / "idx")}})
            srv.wait_ready()
            st = storm(srv, root, args.ops, seed=seed, files=args.files)
            rc = srv.shutdown()
        finally:
            srv.kill()
        runs.append({**dataclasses.asdict(st), "exit_code": rc, "seconds": round(time.time() - t0, 1)})
        print(json.dumps({k: (len(v) if isinstance(v, list) else v) for k, v in runs[-1].items()}), flush=True)
    out = {"runs": runs, "total_ops": sum(r["ops"] for r in runs),
           "violations": sum(len(r["violations"]) for r in runs), "lost": sum(len(r["lost"]) for r in runs),
           "stale": sum(len(r["stale"]) for r in runs)}
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0 if not (out["violations"] or out["lost"] or out["stale"]) else 1


if __name__ == "__main__":
    sys.exit(main())
