"""SIGKILL `sg index` at random moments: the index must open, pass its integrity check, and after resuming give
the same results as a clean build. bench/reliability/kill_index.py runs the 50-kill version."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import Engine, load_settings

QUERIES = ["check if a variable is iterable", "read a file line by line", "convert string to datetime",
           "remove duplicates from a list", "sort a dictionary by value"]


def corpus(bench: Path, dest: Path, n: int) -> Path:
    src = sorted((bench / "cosqa" / "corpus").iterdir())[:n]
    dest.mkdir()
    for f in src:
        shutil.copy(f, dest / f.name)
    return dest


def sg_index(root: Path, index_dir: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "index", str(root), "--index-dir", str(index_dir),
                             "-q", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def results(root: Path, index_dir: Path, embed: bool) -> list[list[tuple[str, str]]]:
    settings = load_settings(root, {"index": {"index_dir": str(index_dir)}, "models": {"enabled": embed}})
    eng = Engine(root, settings)
    try:
        assert eng.check() == []
        return [[(h.path, h.symbol) for h in eng.search(q, k=5, mode="hybrid" if embed else "lexical").hits]
                for q in QUERIES]
    finally:
        eng.close()


def committed(index_dir: Path) -> int:
    """Work the index has committed so far: stored files plus stored vectors (read-only, as a second reader)."""
    try:
        con = sqlite3.connect(f"file:{index_dir / 'index.sqlite'}?mode=ro", uri=True, timeout=0.2)
        try:
            return sum(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("files", "vectors"))
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or its schema not written yet
        return 0


def kill_midway(p: subprocess.Popen, index_dir: Path, target: int) -> bool:
    """SIGKILL `p` once the index in `index_dir` has committed `target` units (the kill lands somewhere in the
    batch being written then). True when the kill met a running indexer."""
    while committed(index_dir) < target and p.poll() is None:
        time.sleep(0.005)
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    return p.wait(timeout=60) == -signal.SIGKILL and alive


@pytest.mark.parametrize("embed", [False, True], ids=["lexical", "with-model"])
def test_sigkill_during_index_then_resume(bench_dir: Path, tmp_path: Path, embed: bool) -> None:
    root = corpus(bench_dir, tmp_path / "ws", 400 if embed else 2000)
    extra = () if embed else ("--no-models",)
    clean = tmp_path / "clean"
    p = sg_index(root, clean, extra)
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()
    expected = results(root, clean, embed)
    total = committed(clean)

    rng = random.Random(1234)
    crashed = tmp_path / "crashed"
    for round_ in range(3):
        start = committed(crashed)
        assert start < total, f"round {round_}: the index completed before it was killed"
        # kill a random way into what is left (at most a third of it, so every round still has work to cut)
        target = start + max(1, int(rng.uniform(0.05, 0.35) * (total - start)))
        p = sg_index(root, crashed, extra)
        assert kill_midway(p, crashed, target), f"round {round_}: the indexer had exited before the kill"
        # after every kill the store opens and is internally consistent
        eng = Engine(root, load_settings(root, {"index": {"index_dir": str(crashed)}, "models": {"enabled": embed}}))
        assert eng.check() == []
        eng.close()
    p = sg_index(root, crashed, extra)
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()
    assert results(root, crashed, embed) == expected
