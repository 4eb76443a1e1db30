"""Fuzz `sg-lsp --stdio` with N seeded hostile messages (default 10,000): zero crashes, exactly one response per
request id, bounded memory, still answering a normal sg/search afterwards. Prints figures, writes JSON."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rellib import LEXICAL, REPO, Fuzzer, Raw, check_answers  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=500, help="check answers every N messages")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "reliability_fuzz.json"))
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sg-fuzz-"))
    root = base / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "mathutil.py").write_text("def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
                                              "        a, b = b, a + b\n    return a\n")
    (base / "secret.txt").write_text("TOPSECRETMARKER\n")
    srv = Raw(stderr=base / "stderr.log")
    fz = Fuzzer(root, base / "secret.txt", seed=args.seed)
    t0 = time.time()
    codes: dict[str, int] = {}
    problems: list[str] = []
    try:
        srv.initialize(root, {**LEXICAL, "index": {"index_dir": str(base / "idx")}})
        srv.wait_ready()
        rss0 = srv.rss_kb()
        rss_peak = rss0
        rss_trace: list[int] = []
        sent = 0
        while sent < args.messages:
            for _ in range(min(args.batch, args.messages - sent)):
                srv.write(fz.message())
                sent += 1
            try:
                codes = check_answers(srv, fz.expected, timeout=300)
            except AssertionError as exc:
                problems.append(str(exc))
                break
            rss_peak = max(rss_peak, srv.rss_kb())
            rss_trace.append(srv.rss_kb())
        rss1 = srv.rss_kb()
        status = srv.call("sg/status")["result"] if srv.proc.poll() is None else {}
        models_loaded = [f.get("modelsLoaded") for f in status.get("folders", [])]
        threads = len(list(Path(f"/proc/{srv.proc.pid}/task").iterdir())) if srv.proc.poll() is None else 0
        fds = len(list(Path(f"/proc/{srv.proc.pid}/fd").iterdir())) if srv.proc.poll() is None else 0
        alive = srv.proc.poll() is None
        final = srv.call("sg/search", {"query": "fibonacci", "mode": "lexical"}) if alive else {}
        ok_after = bool(final.get("result", {}).get("results"))
        rc = srv.shutdown() if alive else srv.proc.returncode
    finally:
        srv.kill()
    log = (base / "stderr.log").read_text(errors="replace")
    internal = [{"request": fz.bodies.get(k, "?"), "error": v[0]["error"]["message"][:300]}
                for k, v in srv.responses.items() if "error" in v[0] and v[0]["error"]["code"] == -32603]
    out = {"messages": sent, "requests_with_id": len(fz.expected), "kinds": fz.kinds, "response_codes": codes,
           "internal_errors": codes.get("-32603", 0),
           "internal_error_samples": internal[:10], "server_alive": alive, "exit_code": rc,
           "search_after": ok_after, "rss_kb_before": rss0, "rss_kb_after": rss1, "rss_kb_peak": rss_peak,
           "rss_growth_kb": rss1 - rss0, "rss_kb_per_batch": rss_trace, "models_loaded": models_loaded, "threads_after": threads, "fds_after": fds, "tracebacks_in_stderr": log.count("Traceback"),
           "memory_error": "MemoryError" in log, "problems": problems, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0 if alive and ok_after and not problems and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
