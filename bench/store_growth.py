"""Store growth under a save storm: N saves of one edited function through Engine.update_files (as an editor's
save would), on two copies of a small corpus in the same run: once as sg runs (vectors of old versions collected),
once with collection turned off (how the store grew before). Prints the store's size and vector rows before and
after each storm.

    python bench/store_growth.py [--corpus ../shared/bench/repo-click/corpus] [--saves 1000] [--files 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine.indexer as indexer  # noqa: E402
from engine import Engine, load_settings  # noqa: E402


def store_size(eng: Engine) -> dict:
    """Bytes of the SQLite file after a checkpoint (the WAL folded in), and its vector and chunk rows."""
    path = eng.status()["index"]
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
        vectors = con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        chunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    return {"bytes": pages, "bytes_in_use": pages - free, "vector_rows": vectors, "chunks": chunks}


def storm(corpus: Path, files: int, saves: int, gc: bool, work: Path) -> dict:
    root = work / ("gc" if gc else "no-gc")
    src = sorted(p for p in corpus.rglob("*.py") if p.is_file())[:files]
    for p in src:
        dest = root / p.relative_to(corpus)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)
    target = root / "edited.py"
    target.write_text("def edited(x):\n    return x\n")
    settings = load_settings(root)
    settings.index.index_dir = str(work / f"index-{root.name}")
    saved = indexer.GC_MIN
    if not gc:
        indexer.GC_MIN = 10**12  # never reached: collection off
    eng = Engine(root, settings)
    try:
        eng.index()
        before = store_size(eng)
        t0 = time.perf_counter()
        for i in range(saves):
            target.write_text(f"def edited(x):\n    \"\"\"Revision {i}.\"\"\"\n    return x + {i}\n")
            eng.update_files(["edited.py"])
        seconds = time.perf_counter() - t0
        after = store_size(eng)
        assert eng.search(f"Revision {saves - 1}", k=1).hits
    finally:
        eng.close()
        indexer.GC_MIN = saved
    return {"gc": gc, "saves": saves, "before": before, "after": after, "seconds": round(seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/bench/repo-click/corpus"))
    ap.add_argument("--saves", type=int, default=1000)
    ap.add_argument("--files", type=int, default=30, help="how many of the corpus's .py files to copy")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-growth-") as tmp:
        rows = [storm(Path(args.corpus), args.files, args.saves, gc, Path(tmp)) for gc in (True, False)]
    for r in rows:
        b, a = r["before"], r["after"]
        print(f"{'with GC   ' if r['gc'] else 'without GC'}  {r['saves']} saves in {r['seconds']} s: "
              f"store {b['bytes'] / 1e6:.2f} MB -> {a['bytes'] / 1e6:.2f} MB "
              f"(in use {b['bytes_in_use'] / 1e6:.2f} -> {a['bytes_in_use'] / 1e6:.2f} MB), "
              f"vector rows {b['vector_rows']} -> {a['vector_rows']}, chunks {b['chunks']} -> {a['chunks']}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
