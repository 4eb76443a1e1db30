"""How soon after `initialized` the server answers a search semantically (models warmed up) and is ready.

    .venv/bin/python bench/lsp_first_query.py --files 4000                        # this checkout
    .venv/bin/python bench/lsp_first_query.py --files 4000 --pythonpath /tmp/old  # another checkout, same run
    .venv/bin/python bench/lsp_first_query.py --restart --files 6267 --runs 10 [--runtime onnx]  # indexed workspace

Each run copies N CoSQA files into a fresh workspace with a fresh index, starts `sg-lsp --stdio` (real models,
models.threads=1), and polls sg/search (semantic) and sg/status. Reports, per server: seconds until the first
search answered semantically (`model` is not "lexical" and no note says the models are loading), until sg/status
says ready (lexical pass, models and embeddings done), and the slowest of those searches (a search that has to
load the model weights itself waits for them). Runs alternate between the servers so both see
the same machine load. Prints JSON.

--restart measures the server restarting on a workspace that is already indexed (what a person sees every time
the editor starts): one server indexes it first; then each run starts a server, waits for sg/status to say ready
without searching, and times the first sg/search after that, along with the time from `initialize` to ready and
to the first semantic answer.
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

from engine.embed.precision import cpu_flags  # noqa: E402

BENCH = (ROOT.parent / "shared" / "bench").resolve()


QUERY = {"query": "read a file line by line", "mode": "semantic", "limit": 5}


def start(pythonpath: str, ws: Path, idx: Path, models: dict) -> tuple[Raw, float]:
    srv = Raw(env={"PYTHONPATH": pythonpath})
    t0 = time.monotonic()
    srv.call("initialize", {"processId": None, "rootUri": ws.as_uri(), "capabilities": {},
                            "workspaceFolders": [{"uri": ws.as_uri(), "name": "ws"}],
                            "initializationOptions": {"models": {"threads": 1, **models},
                                                      "index": {"index_dir": str(idx)}}})
    srv.notify("initialized", {})
    return srv, t0


def is_semantic(res: dict) -> bool:
    res = res.get("result") or {}
    return res.get("model", "lexical") != "lexical" and not any("loading" in n for n in res.get("notes", []))


def wait_ready(srv: Raw, t0: float, timeout: float) -> float | None:
    while time.monotonic() - t0 < timeout:
        if srv.call("sg/status", timeout=timeout)["result"]["state"] == "ready":
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def restart_run(pythonpath: str, ws: Path, idx: Path, models: dict, timeout: float) -> dict[str, float | None]:
    """A server restarting on an indexed workspace: time to ready, then the first search after ready."""
    srv, t0 = start(pythonpath, ws, idx, models)
    try:
        ready = wait_ready(srv, t0, timeout)
        t1 = time.monotonic()
        res = srv.call("sg/search", QUERY, timeout=timeout)
        first = time.monotonic() - t1
        return {"ready_s": ready, "first_search_after_ready_ms": round(first * 1000, 1),
                "first_semantic_s": time.monotonic() - t0 if is_semantic(res) else None}
    finally:
        srv.kill()


def one_run(pythonpath: str, files: list[Path], work: Path, timeout: float,
            models: dict) -> dict[str, float | None]:
    ws = work / "ws"
    ws.mkdir(parents=True)
    for f in files:
        shutil.copy(f, ws / f.name)
    srv, t0 = start(pythonpath, ws, work / "idx", models)
    try:
        semantic = ready = None
        slowest = 0.0
        while time.monotonic() - t0 < timeout and (semantic is None or ready is None):
            if semantic is None:
                t1 = time.monotonic()
                res = srv.call("sg/search", QUERY, timeout=timeout)
                slowest = max(slowest, time.monotonic() - t1)
                if is_semantic(res):
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
    ap.add_argument("--restart", action="store_true", help="restart on an indexed workspace (see above)")
    ap.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto", help="models.runtime")
    args = ap.parse_args()
    models = {"runtime": args.runtime} if args.runtime != "auto" else {}
    files = sorted((BENCH / "cosqa" / "corpus").iterdir())[: args.files]
    servers = [str(ROOT), *args.pythonpath]
    out: dict[str, list[dict]] = {s: [] for s in servers}
    base = Path(tempfile.mkdtemp(prefix="sg-first-query-"))
    if args.restart:
        ws = base / "ws"
        ws.mkdir(parents=True)
        for f in files:
            shutil.copy(f, ws / f.name)
        srv, t0 = start(servers[0], ws, base / "idx", models)
        print(json.dumps({"indexed_s": wait_ready(srv, t0, args.timeout)}), file=sys.stderr)
        srv.kill()
    for r in range(args.runs):
        for i, s in enumerate(servers):
            if args.restart:
                out[s].append(restart_run(s, ws, base / "idx", models, args.timeout))
            else:
                out[s].append(one_run(s, files, base / f"{r}-{i}", args.timeout, models))
            print(json.dumps({"server": s, "run": r, **out[s][-1]}), file=sys.stderr)
    keys = sorted({k for runs in out.values() for x in runs for k in x})
    summary = {s: {k: statistics.median([x[k] for x in runs if x.get(k) is not None] or [float("nan")])
                   for k in keys} for s, runs in out.items()}
    print(json.dumps({"files": args.files, "cpu_flags": cpu_flags(), "models": models, "restart": args.restart,
                      "runs": out, "median": summary}, indent=1))
    if args.restart:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
