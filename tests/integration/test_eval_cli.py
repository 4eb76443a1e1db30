"""Eval-spec loading and metrics, and the `sg` CLI as a user runs it (real subprocesses, lexical mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.eval import load_spec, rank_of, run_eval
from engine.records import Hit
from engine.settings import load_settings


def hit(path: str, symbol: str = "") -> Hit:
    return Hit(0, path, symbol, "function", "python", 1, 2, 0, 0, 1.0, "")


def test_rank_of_files_and_symbols() -> None:
    hits = [hit("a.py", "f"), hit("a.py", "g"), hit("b.py", "h"), hit("c.py", "C.m")]
    assert rank_of(hits, ("a.py",)) == 1
    assert rank_of(hits, ("b.py",)) == 2  # a.py's two chunks count once
    assert rank_of(hits, ("c.py::C.m",)) == 4
    assert rank_of(hits, ("a.py::g",)) == 2
    assert rank_of(hits, ("zzz.py",)) is None
    assert rank_of(hits, ("c.py",), depth=2) is None


def _spec(tmp: Path, data) -> Path:
    p = tmp / "spec.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_spec_errors(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    with pytest.raises(SpecError, match="no such spec"):
        load_spec(tmp_path / "nope.json")
    with pytest.raises(SpecError, match="not a readable JSON"):
        load_spec(_spec(tmp_path, "{broken"))
    with pytest.raises(SpecError, match="missing key 'queries'"):
        load_spec(_spec(tmp_path, {"corpus": "corpus"}))
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(_spec(tmp_path, {"corpus": "missing", "queries": []}))
    with pytest.raises(SpecError, match="mode"):
        load_spec(_spec(tmp_path, {"corpus": "corpus", "mode": "x", "queries": []}))
    with pytest.raises(SpecError, match="query #0"):
        load_spec(_spec(tmp_path, {"corpus": "corpus", "queries": [{"query": 3}]}))


def test_run_eval_on_a_small_spec(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.py").write_text("def add_numbers(a, b):\n    return a + b\n")
    (corpus / "b.py").write_text("class Greeter:\n    def say_hello(self, name):\n        return 'hi ' + name\n")
    spec = _spec(tmp_path, {"name": "tiny", "corpus": "corpus", "mode": "search", "queries": [
        {"id": "1", "query": "add numbers", "relevant": ["a.py"]},
        {"id": "2", "query": "say hello greeter", "relevant": ["b.py::Greeter.say_hello"]},
        {"id": "3", "query": "nothing matches zebra", "relevant": ["a.py"]}]})
    res = run_eval(spec, mode="lexical", settings=load_settings(None, {"models": {"enabled": False}}),
                   index_dir=tmp_path / "idx", keep_misses=True)
    assert res.n == 3 and res.p_at_1 == pytest.approx(2 / 3) and res.r_at_10 == pytest.approx(2 / 3)
    assert [m["id"] for m in res.misses] == ["3"]


def sg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_index_search_status(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def parse_http_header(line):\n    return line.split(':', 1)\n")
    (tmp_path / "x.bin").write_bytes(b"\x00" * 64)
    r = sg("index", str(tmp_path), "--no-models", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["files"] == 1 and data["skipped"] == 1
    r = sg("search", "http header", str(tmp_path), "--no-models", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"][0]["symbol"] == "parse_http_header" and out["results"][0]["line"] == 1
    r = sg("status", str(tmp_path), "--skipped")
    assert r.returncode == 0 and "binary" in r.stdout and "x.bin" in r.stdout
    r = sg("search", "http header", str(tmp_path), "--no-models")
    assert r.returncode == 0 and "m.py:1" in r.stdout


def test_cli_search_into_a_pipe_prints_one_unwrapped_line_per_hit(tmp_path: Path) -> None:
    """Off a terminal (stdout is a pipe here) a hit is one line `path:line  symbol  score`, however long, with its
    snippet lines indented under it; rich would wrap at 80 columns and push the score onto a line of its own."""
    long_name = "parse_http_header_" + "and_validate_every_field_" * 4 + "strictly"
    sub = tmp_path / "a_rather_long_directory_name" / "and_another_one_below_it"
    sub.mkdir(parents=True)
    (sub / "module_with_a_long_name.py").write_text(f"def {long_name}(line):\n    return line.split(':', 1)\n")
    (tmp_path / "short.py").write_text("def http_header():\n    return 'header'\n")
    r = sg("search", "http header", str(tmp_path), "--no-models", "-k", "5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    heads = [ln for ln in lines if not ln.startswith("    ")]
    assert len(heads) == 2 and all(len(ln.split("  ")) == 3 for ln in heads), r.stdout
    rel = "a_rather_long_directory_name/and_another_one_below_it/module_with_a_long_name.py"
    first = next(ln for ln in heads if ln.startswith(rel))
    path_line, symbol, score = first.split("  ")
    assert path_line == f"{rel}:1" and symbol == long_name and float(score) > 0 and len(first) > 80
    assert f"    def {long_name}(line):" in lines  # the snippet, indented and whole
    assert "results in" in r.stderr and "results in" not in r.stdout


@pytest.mark.parametrize("args, needle", [
    (("search", "q", "/definitely/not/here"), "not a directory"),
    (("search", "q", ".", "-k", "0"), "between 1 and 1000"),
    (("search", "q", ".", "-k", "lots"), "not a whole number"),
    (("eval", "--spec", "/no/such/spec.json"), "no such spec"),
    (("similar", "nocolon"), "FILE:LINE"),
    (("frobnicate",), "invalid choice"),
])
def test_cli_bad_arguments_are_one_line_errors(tmp_path: Path, args, needle) -> None:
    r = sg(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert needle in r.stderr and "Traceback" not in r.stderr
