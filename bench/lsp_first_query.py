"""How soon after `initialized` the server answers a search semantically (models warmed up) and is ready.

    .venv/bin/python bench/lsp_first_query.py --files 4000                        # this checkout
    .venv/bin/python bench/lsp_first_query.py --files 4000 --pythonpath /tmp/old  # another checkout, same run

Each run copies N CoSQA files into a fresh workspace with a fresh index, starts `sg-lsp --stdio` (real models,
models.threads=1), and polls sg/search (semantic) and sg/status. Reports, per server: seconds until the first
search answered semantically (`model` is not "lexical" and no note says the models are loading), until sg/status
says ready (lexical pass, models and embeddings done), and the slowest of those searches (a search that has to
load the model weights itself waits for them). Runs alternate between the servers so both see
the same machine load. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "reliability"))

from rellib import Raw  # noqa: E402

BENCH = (ROOT.parent / "shared" / "bench").resolve()


def one_run(pythonpath: str, files: list[Path], work: Path, timeout: float) -> dict[str, float | None]:
    ws = work / "ws"
    ws.mkdir(parents=True)
    for f in files:
        shutil.copy(f, ws / f.name)
    srv = Raw(env={"PYTHONPATH": pythonpath})
    try:
        srv.call("initialize", {"processId": None, "rootUri": ws.as_uri(), "capabilities": {},
                                "workspaceFolders": [{"uri": ws.as_uri(), "name": "ws"}],
                                "initializationOptions": {"models": {"threads": 1},
                                                          "index": {"index_dir": str(work / "idx")}}})
        t0 = time.monotonic()
        srv.notify("initialized", {})
        semantic = ready = None
        slowest = 0.0
        while time.monotonic() - t0 < timeout and (semantic is None or ready is None):
            if semantic is None:
                t1 = time.monotonic()
                res = srv.call("sg/search", {"query": "read a file line by line", "mode": "semantic", "limit": 5},
                               timeout=timeout)
                slowest = max(slowest, time.monotonic() - t1)
                res = res.get("result") or {}
                if res.get("model", "lexical") != "lexical" and not any("loading" in n for n in res.get("notes", [])):
                    semantic = time.monotonic() - t0
            if ready is None and srv.call("sg/status", timeout=timeout)["result"]["state"] == "ready":
                ready = time.monotonic() - t0
            time.sleep(0.1)
        return {"first_semantic_s": semantic, "ready_s": ready, "slowest_search_s": slowest}
    finally:
        srv.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=3, help="runs per server")
    ap.add_argument("--pythonpath", action="append", default=[],
                    help="another checkout to compare with this one (repeatable)")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    files = sorted((BENCH / "cosqa" / "corpus").iterdir())[: args.files]
    servers = [str(ROOT), *args.pythonpath]
    out: dict[str, list[dict]] = {s: [] for s in servers}
    base = Path(tempfile.mkdtemp(prefix="sg-first-query-"))
    for r in range(args.runs):
        for i, s in enumerate(servers):
            out[s].append(one_run(s, files, base / f"{r}-{i}", args.timeout))
            print(json.dumps({"server": s, "run": r, **out[s][-1]}), file=sys.stderr)
    summary = {s: {k: statistics.median([x[k] for x in runs if x[k] is not None] or [float("nan")])
                   for k in ("first_semantic_s", "ready_s", "slowest_search_s")} for s, runs in out.items()}
    print(json.dumps({"files": args.files, "runs": out, "median": summary}, indent=1))


if __name__ == "__main__":
    main()
