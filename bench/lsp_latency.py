"""sg/search latency through the language server (stdio) next to Engine.search in-process, on one corpus.

    .venv/bin/python bench/lsp_latency.py                      # CoSQA corpus, 200 queries, hybrid, k=10
    .venv/bin/python bench/lsp_latency.py --queries 50 --mode lexical

Measures, per query and interleaved (so both see the same machine load): Engine.search in this process; the
server's own time for sg/search (`elapsedMs`: engine + LSP translation); the client's round trip over stdio
(framing, JSON, scheduling) for that same request.
The index lives in a cache dir (never inside ../shared, which is read-only). Prints a table, writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _spec import load_spec  # noqa: E402

from engine.search import Engine  # noqa: E402
from engine.settings import load_settings  # noqa: E402


class StdioClient:
    """Minimal LSP client: Content-Length framing over the server's stdin/stdout."""

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env)
        self.inbox: queue.Queue = queue.Queue()
        self.ids = iter(range(1, 1 << 30))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.inbox.put(None)
                    return
                if not line.strip():
                    break
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value)
            self.inbox.put(json.loads(out.read(length)))

    def _send(self, msg: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def notify(self, method: str, params: object = None) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: object = None, timeout: float = 600) -> object:
        msg_id = next(self.ids)
        self._send({"id": msg_id, "method": method, "params": params})
        end = time.monotonic() + timeout
        while True:
            msg = self.inbox.get(timeout=max(0.01, end - time.monotonic()))
            if msg is None:
                raise RuntimeError("the server exited")
            if msg.get("id") == msg_id and "method" not in msg:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result")
            if "method" in msg and "id" in msg:  # a request from the server: answer null
                self._send({"id": msg["id"], "result": None})


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 0.5), "p95": pct(values, 0.95), "mean": statistics.fmean(values),
            "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="/work/shared/bench/cosqa/dev.json")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--mode", default="hybrid", choices=["hybrid", "semantic", "lexical"])
    ap.add_argument("--lexical-only", action="store_true", help="models disabled (no embeddings at all)")
    # 1 by default: on a small shared CPU, 2 intra-op threads stall each other and the comparison turns to noise.
    ap.add_argument("--threads", type=int, default=1, help="models.threads for both sides (0: engine default)")
    ap.add_argument("--index-dir", help="default: <tmp>/sg-bench/<spec>-index (reused between runs)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lsp_latency.json"))
    args = ap.parse_args()

    spec = load_spec(args.spec)
    queries = [q.query for q in spec.queries][: args.queries]
    suffix = "lexical" if args.lexical_only else "models"
    index_dir = Path(args.index_dir or Path(tempfile.gettempdir()) / "sg-bench" / f"{spec.name}-index-{suffix}")
    index_dir.mkdir(parents=True, exist_ok=True)
    overrides = {"index": {"index_dir": str(index_dir)}, "models": {"threads": args.threads}}
    if args.lexical_only:
        overrides["models"]["enabled"] = False

    # 1. In-process engine: build (or refresh) the index.
    eng = Engine(spec.corpus, load_settings(spec.corpus, overrides))
    t0 = time.perf_counter()
    rep = eng.index(progress=lambda phase, done, total: print(f"\r  {phase} {done}/{total}   ", end="",
                                                               file=sys.stderr, flush=True))
    print(f"\nindex: {rep.files} files, {rep.chunks} chunks, {rep.embedded} embedded, "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)

    # 2. The language server over stdio on the same index (the in-process engine stays open: both only read).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    client = StdioClient([sys.executable, "-m", "sg_lsp", "--stdio"], env)
    t0 = time.perf_counter()
    client.request("initialize", {"processId": os.getpid(), "rootUri": spec.corpus.as_uri(), "capabilities": {},
                                  "initializationOptions": overrides})
    client.notify("initialized", {})
    while client.request("sg/status")["state"] != "ready":
        time.sleep(0.1)
    ready_s = time.perf_counter() - t0
    for q in queries[:5]:
        eng.search(q, k=args.k, mode=args.mode)
        client.request("sg/search", {"query": q, "limit": args.k, "mode": args.mode})

    # 3. Interleaved timing: the same query in-process, then through the server.
    engine_ms, server_ms, round_trip_ms = [], [], []
    same_top = 0
    for q in queries:
        t = time.perf_counter()
        mine = eng.search(q, k=args.k, mode=args.mode)
        engine_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        res = client.request("sg/search", {"query": q, "limit": args.k, "mode": args.mode})
        round_trip_ms.append((time.perf_counter() - t) * 1000)
        server_ms.append(res["elapsedMs"])
        same_top += bool(mine.hits and res["results"] and res["results"][0]["path"] == mine.hits[0].path)
    models = eng.model_names()
    eng.close()
    client.request("shutdown")
    client.notify("exit")
    client.proc.wait(30)

    rows = {"engine (in-process Engine.search)": summary(engine_ms),
            "server (sg/search elapsedMs)": summary(server_ms),
            "client round trip over stdio": summary(round_trip_ms)}
    print(f"\n{spec.name}: {len(queries)} queries, k={args.k}, mode={args.mode}, models={models}")
    print(f"server ready on the existing index in {ready_s:.1f} s; same top hit in-process and via the server: "
          f"{same_top}/{len(queries)}\n")
    print(f"{'':36} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for name, s in rows.items():
        print(f"{name:36} {s['p50']:8.1f} {s['p95']:8.1f} {s['mean']:8.1f} {s['max']:8.1f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "lsp_latency", "spec": spec.name, "queries": len(queries), "k": args.k, "mode": args.mode,
        "models": models, "index": {"files": rep.files, "chunks": rep.chunks},
        "server_ready_seconds": round(ready_s, 2), "same_top_hit": same_top, "latency_ms": rows,
        "load_average": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
