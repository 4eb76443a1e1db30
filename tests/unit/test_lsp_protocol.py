"""sg_lsp/protocol.py: the sg/* params are structured strictly by the server's converter (unknown fields, wrong
types and coercible values refused, with the field named; defaults filled in) and results come out as the JSON of
docs/protocol.md (camelCase, optional fields left out rather than null)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest

from engine import MODES
from sg_lsp import protocol
from sg_lsp.jsonrpc import make_converter
from sg_lsp.protocol import Invalid, SearchParams, SimilarParams, StatusParams, TuneParams

CONV = make_converter()


def parse(raw: Any, cls: type, method: str = "sg/x") -> Any:
    return protocol.structure(CONV, raw, cls, method)


def problem(raw: Any, cls: type, method: str = "sg/x") -> str:
    with pytest.raises(Invalid) as err:
        parse(raw, cls, method)
    text = str(err.value)
    assert text.startswith(f"invalid params for {method}: "), text
    return text


def test_defaults_and_nulls() -> None:
    p = parse({"query": "fib"}, SearchParams)
    assert p == SearchParams(query="fib", limit=None, paths=None, mode=None, explain=False)
    # null means "left out", as before the classes
    assert parse({"query": "fib", "limit": None, "explain": None}, SearchParams) == p
    assert parse({"query": "q", "limit": 3, "paths": ["src/**"], "mode": "lexical", "explain": True},
                 SearchParams) == SearchParams("q", 3, ["src/**"], "lexical", True)
    assert parse(None, StatusParams) == parse({}, StatusParams) == StatusParams()
    assert parse({"dryRun": True, "outDir": "o", "configPath": "c"}, TuneParams) == TuneParams(
        config_path="c", out_dir="o", dry_run=True)


def test_unknown_fields_are_refused() -> None:
    assert "unknown field 'bogus' (known: query, limit, paths, mode, explain)" in problem(
        {"query": "x", "bogus": 1}, SearchParams)
    assert "'textDocument' has unknown field 'x'" in problem(
        {"textDocument": {"uri": "file:///a", "x": 1}, "position": {"line": 1}}, SimilarParams)
    assert "it takes no params" in problem({"a": 1}, StatusParams)


@pytest.mark.parametrize("raw, words", [
    ({"query": "x", "limit": "10"}, "'limit' must be an integer"),
    ({"query": "x", "limit": True}, "'limit' must be an integer"),
    ({"query": "x", "limit": 2.5}, "'limit' must be an integer"),
    ({"query": "x", "explain": "yes"}, "'explain' must be a boolean"),
    ({"query": "x", "paths": "src"}, "'paths' must be an array of strings"),
    ({"query": "x", "paths": [3]}, "'paths' must be an array of strings"),
    ({"query": "x", "mode": "fuzzy"}, "'mode' must be one of hybrid, semantic, lexical"),
    ({"query": 5}, "'query' must be a string"),
    ({}, "'query' (a string) is required"),
    ({"query": "fib \ud800"}, "'query' is not valid Unicode text (lone surrogate at character 4)"),
    (["positional"], "params must be an object"),
])
def test_wrong_types_are_refused_with_the_field(raw: Any, words: str) -> None:
    assert words in problem(raw, SearchParams, "sg/search")


def test_similar_params_both_forms() -> None:
    lsp = parse({"textDocument": {"uri": "file:///a.py"}, "position": {"line": 3, "character": 2}}, SimilarParams)
    assert lsp.target == ("file:///a.py", 3, 2)
    assert parse({"uri": "file:///a.py", "line": 3, "limit": 5}, SimilarParams).target == ("file:///a.py", 3, None)
    assert "give {textDocument: {uri}, position} or {uri, line}" in problem({"uri": "file:///a.py"}, SimilarParams)
    assert "'position' must be {line, character}" in problem({"textDocument": {"uri": "u"}}, SimilarParams)
    assert "'line' must be >= 0" in problem({"uri": "u", "line": -1}, SimilarParams)
    assert "'position.line' must be an integer" in problem(
        {"textDocument": {"uri": "u"}, "position": {"line": "a"}}, SimilarParams)
    assert "'textDocument' must be an object {uri}" in problem({"textDocument": "u", "line": 1}, SimilarParams)
    assert "'outDir' must be a string" in problem({"outDir": 5}, TuneParams)


def test_results_unstructure_to_the_documented_json() -> None:
    pos = protocol.Position(line=1, character=0)
    hit = protocol.SearchHit(uri="file:///a.py", path="a.py", range=protocol.Range(pos, pos), symbol="f",
                             kind="function", language="python", score=0.5, snippet="def f(): ...", space="")
    res = protocol.SearchResult(results=[hit], model="lexical", models={}, mode="lexical", notes=[], elapsed_ms=1.5)
    out = CONV.unstructure(res)
    assert out == {"results": [{"uri": "file:///a.py", "path": "a.py",
                                "range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 0}},
                                "symbol": "f", "kind": "function", "language": "python", "score": 0.5,
                                "snippet": "def f(): ...", "space": ""}],
                   "model": "lexical", "models": {}, "mode": "lexical", "notes": [], "elapsedMs": 1.5}
    job = CONV.unstructure(protocol.JobStatus(id="tune-1", kind="tune", folder="f", state="running", message="",
                                              started=1.0, finished=None))
    assert job == {"id": "tune-1", "kind": "tune", "folder": "f", "state": "running", "message": "", "started": 1.0,
                   "finished": None}  # finished is null while running; result and error are left out
    assert CONV.unstructure(protocol.TuneResult(job_id="tune-1")) == {"jobId": "tune-1"}


def test_modes_match_the_engine() -> None:
    assert set(get_args(protocol.Mode)) == set(MODES)


def test_docs_tables_follow_the_classes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert doc.count("<!-- table: ") == 8
    assert protocol.update_doc(doc) == doc, "regenerate them: python -m sg_lsp.protocol docs/protocol.md"
